"""The validation curve of a lineage of runs, end to end, and how flat its last hours are.

    python bench/learning_curve.py runs/r18g runs/r18h:3 runs/r18i runs/r18j --start-hours 12.0

Each argument is a run folder whose ``train.log`` holds one JSON line per validated epoch
(what ``python -m face_mtl train`` writes; every epoch with the default ``--eval-every 1``);
``RUN:N`` keeps its first N logged epochs (a run whose later epochs the next run did not
continue from). A run's hours end at its last logged epoch. The runs are laid end to end on one clock of
training hours, starting at ``--start-hours`` (the lineage's hours before the first run).
Prints a Markdown table of every epoch's validation figures (EMA weights, one view, the run's
trained identity head: the figures the loop logs, not ``face-mtl eval``'s), then, for the
last ``--window-hours``, each figure's range and least-squares slope per hour.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

FIGURES = {  # train.log's names -> column titles
    "ferplus_accuracy": "FER+",
    "ferplus_tight_accuracy": "FER+ tight",
    "age_mae": "age MAE",
    "gender_accuracy": "gender",
    "ethnicity_accuracy": "ethnicity",
    "verification_accuracy": "verification",
}


def epochs_of(run: str) -> tuple[str, list[dict]]:
    """(run folder, its epoch records in order), cut to the first N epochs for ``RUN:N``."""
    folder, _, keep = run.partition(":")
    log = Path(folder) / "train.log"
    if not log.is_file():
        raise SystemExit(f"{log}: no such training log")
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith('{"epoch"')]
    records = [r for r in records if "val" in r]
    return folder, records[: int(keep)] if keep else records


def lineage(runs: list[str], start_hours: float) -> list[dict]:
    """One row per epoch: run, epoch, hours on the lineage's clock, lr and the figures."""
    rows, offset = [], start_hours
    for run in runs:
        folder, records = epochs_of(run)
        for record in records:
            rows.append({"run": folder, "epoch": record["epoch"], "hours": offset + record["elapsed_min"] / 60,
                         "lr": record["lr"], **{k: record["val"].get(k) for k in FIGURES}})
        if records:
            offset += records[-1]["elapsed_min"] / 60
    return rows


def flatness(rows: list[dict], window_hours: float) -> dict[str, dict[str, float]]:
    """For the rows of the last ``window_hours``: each figure's min, max, first, last and
    least-squares slope per hour."""
    end = rows[-1]["hours"]
    window = [r for r in rows if r["hours"] >= end - window_hours]
    summary = {}
    for key, title in FIGURES.items():
        logged = [r for r in window if r[key] is not None]  # older runs lack some figures
        if len(logged) < 2:
            continue
        hours, values = np.array([r["hours"] for r in logged]), np.array([r[key] for r in logged], float)
        slope = float(np.polyfit(hours, values, 1)[0])
        summary[title] = {"min": float(values.min()), "max": float(values.max()),
                          "first": float(values[0]), "last": float(values[-1]), "slope_per_hour": slope}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders in training order (RUN:N keeps the first N logged epochs)")
    parser.add_argument("--start-hours", type=float, default=0.0, help="training hours before the first run")
    parser.add_argument("--window-hours", type=float, default=3.0, help="the last hours to summarise")
    args = parser.parse_args()

    rows = lineage(args.runs, args.start_hours)
    if not rows:
        raise SystemExit("no epochs with validation figures in these runs")
    print("| run | epoch | hours | lr | " + " | ".join(FIGURES.values()) + " |")
    print("|---|---|---|---|" + "---|" * len(FIGURES))
    for r in rows:
        figures = " | ".join("" if r[k] is None else (f"{r[k]:.2f}" if k == "age_mae" else f"{r[k]:.3f}") for k in FIGURES)
        print(f"| {r['run']} | {r['epoch']} | {r['hours']:.2f} | {r['lr']:.1e} | {figures} |")
    start = max(rows[-1]["hours"] - args.window_hours, rows[0]["hours"])
    print(f"\nlast {args.window_hours:g} hours ({start:.2f} -> {rows[-1]['hours']:.2f}):")
    for title, s in flatness(rows, args.window_hours).items():
        print(f"  {title:>12}: {s['first']:.4f} -> {s['last']:.4f}, range {s['min']:.4f}..{s['max']:.4f}, "
              f"slope {s['slope_per_hour']:+.4f}/hour")


if __name__ == "__main__":
    main()
