"""Print the model card's figure tables (markdown) from `face-mtl eval` JSON and training logs.

    python scripts/card_tables.py runs/next/eval.json runs/mtl96/train.log runs/mtl96b/train.log \
        --single-view runs/next/eval_one_view.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from face_mtl.train.runlog import epoch_records, read_records

TARGETS = {"ferplus_accuracy": ">= 0.80", "age_mae": "<= 6.0", "gender_accuracy": ">= 0.92",
           "ethnicity_accuracy": ">= 0.80", "verification_accuracy": ">= 0.85"}


def validation_table(report: dict, single_view: dict | None = None) -> list[str]:
    """Rows of the shipped figures; with ``single_view`` (an eval run with --no-flip) a column
    of the same figures without the mirror-image pass."""
    reports = [report] + ([single_view] if single_view else [])

    def figure(get, fmt: str) -> str:
        return " | ".join(format(get(r), fmt) for r in reports)

    def analyze_cells(r: dict) -> str:
        u = r["pipeline"]["utkface_analyze"]
        return f"{u['age_mae']:.2f} / {u['gender_accuracy']:.3f} / {u['ethnicity_accuracy']:.3f}"

    extra_head, extra_rule = (" one view (`--no-flip`) |", "---|") if single_view else ("", "")
    predict_crops_row, analyze_row = [], []  # whole-pipeline rows: absent from `face-mtl eval --no-pipeline`
    if "pipeline" in report:
        u = report["pipeline"]["utkface_analyze"]
        predict_crops_row = [
            f"| expression | same, 48x48 grayscale crops through `predict_crops` | FER+ valid, "
            f"{report['pipeline']['ferplus_count']} images "
            f"| {figure(lambda r: r['pipeline']['ferplus_predict_crops_accuracy'], '.3f')} | |"]
        analyze_row = [
            f"| age / gender / ethnicity through `analyze` (detection included) | MAE / acc / acc | "
            f"{u['photos']} UTKFace hold-out photos with margins, face found in {u['face_found_rate']:.1%} "
            f"| {' | '.join(analyze_cells(r) for r in reports)} | |"]
    rows = [
        f"| task | metric | split | shipped |{extra_head} target (issue 3) |",
        f"|---|---|---|---|{extra_rule}---|",
        f"| expression | FER+ 8-class accuracy, majority protocol | FER+ valid (PublicTest), {report['ferplus']['count']} images "
        f"| {figure(lambda r: r['summary']['ferplus_accuracy'], '.3f')} | {TARGETS['ferplus_accuracy']} |",
        *predict_crops_row,
        f"| age | MAE, years | UTKFace 10 % hold-out, {report['utkface']['count']} faces "
        f"| {figure(lambda r: r['summary']['age_mae'], '.2f')} | {TARGETS['age_mae']} |",
        f"| gender | accuracy | same | {figure(lambda r: r['summary']['gender_accuracy'], '.3f')} | {TARGETS['gender_accuracy']} |",
        f"| ethnicity | accuracy | same | {figure(lambda r: r['summary']['ethnicity_accuracy'], '.3f')} "
        f"| {TARGETS['ethnicity_accuracy']} |",
        f"| identity | verification accuracy (10-fold threshold) | {report['identity']['pairs']} pairs of "
        f"{report['identity']['people']} held-out CelebA people "
        f"| {figure(lambda r: r['summary']['verification_accuracy'], '.3f')} | {TARGETS['verification_accuracy']} |",
        *analyze_row,
        "",
        "Per-class recall on FER+ valid: "
        + ", ".join(f"{k} {v:.2f}" for k, v in report["ferplus"]["recall"].items() if v is not None) + ".",
    ]
    return rows


def curve_table(log: Path, with_fer: bool) -> list[str]:
    lines = read_records(log)
    epochs = epoch_records(lines)
    finals = [line["final"] for line in lines if "final" in line]
    projections = [line for line in lines if "identity_projection" in line]
    fer_head, fer_rule = ("FER+ | ", "---|") if with_fer else ("", "")
    rows = [f"| epoch | minutes | lr | train loss | {fer_head}age MAE | gender | ethnicity | verification |",
            f"|---|---|---|---|{fer_rule}---|---|---|---|"]

    def cells(v: dict) -> str:
        fer = f"{v['ferplus_accuracy']:.3f} | " if with_fer else ""
        return f"{fer}{v['age_mae']:.2f} | {v['gender_accuracy']:.3f} | {v['ethnicity_accuracy']:.3f} | {v['verification_accuracy']:.3f}"

    for e in epochs:
        rows.append(f"| {e['epoch']} | {e['elapsed_min']} | {e['lr']:.1e} | {e['train_loss']['total']:.2f} | {cells(e['val'])} |")
    if finals:
        label = "final (BatchNorm re-estimated" + (", PCA identity head)" if projections else ")")
        rows.append(f"| {label} | | | | {cells(finals[-1])} |")
    if projections:
        rows += ["", f"Verification with the CosFace-trained identity head, before it was replaced by the PCA "
                     f"projection: {projections[-1]['verification_with_trained_head']:.3f}."]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("eval_json", type=Path)
    parser.add_argument("logs", type=Path, nargs="*", help="train.log files, oldest run first")
    parser.add_argument("--single-view", type=Path, help="eval JSON of the same weights with --no-flip")
    parser.add_argument("--no-fer-column", type=Path, nargs="*", default=[],
                        help="logs whose per-epoch FER+ figure is not trustworthy")
    args = parser.parse_args()
    single_view = json.loads(args.single_view.read_text(encoding="utf-8")) if args.single_view else None
    print("\n".join(validation_table(json.loads(args.eval_json.read_text(encoding="utf-8")), single_view)))
    for log in args.logs:
        print(f"\n{log}:\n")
        print("\n".join(curve_table(log, with_fer=log not in args.no_fer_column)))


if __name__ == "__main__":
    main()
