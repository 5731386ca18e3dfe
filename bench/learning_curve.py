"""The validation curve of a lineage of runs, end to end, and how flat its last hours are.

    python bench/learning_curve.py runs/r18g runs/r18h:3 runs/r18i runs/r18j --start-hours 12.0

Each argument is a run folder whose ``train.log`` holds one JSON line per validated epoch
(what ``python -m face_mtl train`` writes; every epoch with the default ``--eval-every 1``),
or exported weights whose ``config.json`` carries that run's history (``training/resnet18_64``
still holds its last run's curve on a new machine, where ``runs/`` is gone);
``RUN:N`` keeps its first N logged epochs (a run whose later epochs the next run did not
continue from). A run's hours end at its last logged epoch. The runs are laid end to end on one clock of
training hours, starting at ``--start-hours`` (the lineage's hours before the first run).
Prints a Markdown table of every epoch's validation figures (EMA weights, one view, the run's
trained identity head: the figures the loop logs, not ``face-mtl eval``'s), then, for the
last ``--window-hours``, each figure's range, least-squares slope per hour and that slope's standard error.
Where an argument is exported weights with a validation report (the first, usually), each
figure's fitted change over those hours is also set against its sampling standard error on the
held-out faces (``runlog.sampling_noise``): "flat" where the change is smaller than that error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from face_mtl.train.runlog import FIGURES, flatness, lineage, validation_counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders or exported weights, in training order (RUN:N keeps the first N logged epochs)")
    parser.add_argument("--start-hours", type=float, default=0.0, help="training hours before the first run")
    parser.add_argument("--window-hours", type=float, default=3.0, help="the last hours to summarise")
    args = parser.parse_args()

    try:
        rows = lineage(args.runs, args.start_hours)
    except FileNotFoundError as error:
        raise SystemExit(str(error)) from None
    if not rows:
        raise SystemExit("no epochs with validation figures in these runs")
    print("| run | epoch | hours | lr | " + " | ".join(FIGURES.values()) + " |")
    print("|---|---|---|---|" + "---|" * len(FIGURES))
    for r in rows:
        figures = " | ".join("" if r[k] is None else (f"{r[k]:.2f}" if k == "age_mae" else f"{r[k]:.3f}") for k in FIGURES)
        print(f"| {r['run']} | {r['epoch']} | {r['hours']:.2f} | {r['lr']:.1e} | {figures} |")
    start = max(rows[-1]["hours"] - args.window_hours, rows[0]["hours"])
    print(f"\nlast {args.window_hours:g} hours ({start:.2f} -> {rows[-1]['hours']:.2f}):")
    counts = next((c for c in (validation_counts(Path(run.partition(":")[0])) for run in args.runs) if c), {})
    for title, s in flatness(rows, args.window_hours, counts).items():
        verdict = f"; change {s['change']:+.4f} against noise {s['noise']:.4f}: {s['verdict']}" if "verdict" in s else ""
        print(f"  {title:>12}: {s['first']:.4f} -> {s['last']:.4f}, range {s['min']:.4f}..{s['max']:.4f}, "
              f"slope {s['slope_per_hour']:+.4f}/hour (standard error {s['slope_se']:.4f}){verdict}")
    print("(the standard error treats epochs as independent, so it understates the slope's uncertainty)")


if __name__ == "__main__":
    main()
