"""A run's ``train.log``: the training loop writes it, one line per event (JSON lines are
records: validated epochs, the identity head, the final figures); the model card's scripts and
``bench/learning_curve.py`` read it back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..weights import CONFIG_FILE

LOG_NAME = "train.log"

FIGURES = {  # validation figures the loop logs -> column titles
    "ferplus_accuracy": "FER+",
    "ferplus_tight_accuracy": "FER+ tight",
    "age_mae": "age MAE",
    "gender_accuracy": "gender",
    "ethnicity_accuracy": "ethnicity",
    "verification_accuracy": "verification",
    "ferplus_balanced_accuracy": "FER+ mean recall",
    "wild_verification_accuracy": "wild verification",
    "wild_gender_accuracy": "wild gender",
    "wild_smiling_auc": "smiling AUC",
}


def append_line(run_dir: Path, line: str) -> None:
    """Print ``line`` and add it to the run's log."""
    print(line, flush=True)
    with open(Path(run_dir) / LOG_NAME, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def read_records(log: Path) -> list[dict]:
    """The log's JSON records in order; its plain-text lines are skipped."""
    lines = Path(log).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def epoch_records(records: list[dict]) -> list[dict]:
    """Of a log's records (``read_records``), those of epochs with validation figures (every
    epoch with ``--eval-every 1``)."""
    return [r for r in records if "epoch" in r and "val" in r]


def run_epochs(folder: Path) -> list[dict]:
    """The validated epochs of a run folder's ``train.log`` or, where there is none, of the
    history that an exported weights folder's ``config.json`` carries (``training.history``):
    the run folder dies with its machine, the weights travel with the repository."""
    log, config = folder / LOG_NAME, folder / CONFIG_FILE
    if log.is_file():
        return epoch_records(read_records(log))
    if config.is_file():
        history = json.loads(config.read_text(encoding="utf-8")).get("training", {}).get("history")
        if history:
            return epoch_records(history)
    raise FileNotFoundError(f"{log}: no such training log (nor a config.json with a training history)")


def lineage(runs: list[str], start_hours: float = 0.0) -> list[dict]:
    """One row per validated epoch of runs that continued each other, laid end to end on one
    clock of training hours from ``start_hours``: run, epoch, hours, lr and FIGURES (None
    where a run did not log one). A run is a run folder or exported weights (``run_epochs``).
    ``RUN:N`` keeps a run's first N epochs (one whose later epochs the next run did not
    continue from); a run's hours end at its last kept epoch."""
    rows, offset = [], start_hours
    for run in runs:
        folder, _, keep = run.partition(":")
        records = run_epochs(Path(folder))
        records = records[: int(keep)] if keep else records
        for record in records:
            rows.append({"run": folder, "epoch": record["epoch"], "hours": offset + record["elapsed_min"] / 60,
                         "lr": record["lr"], **{k: record["val"].get(k) for k in FIGURES}})
        if records:
            offset += records[-1]["elapsed_min"] / 60
    return rows


LOWER_IS_BETTER = {"age_mae"}
# Where each figure's sample count sits in config.json's metrics.validation (face-mtl eval's report).
# Where each figure's sample size sits in a validation report (a path of keys). The mean class
# recall's noise from the whole count understates it: its rare classes have a few dozen faces.
COUNT_PATHS = {"ferplus_accuracy": ("ferplus", "count"), "ferplus_tight_accuracy": ("ferplus_tight", "count"),
               "age_mae": ("utkface", "count"), "gender_accuracy": ("utkface", "count"),
               "ethnicity_accuracy": ("utkface", "count"), "verification_accuracy": ("identity", "pairs"),
               "ferplus_balanced_accuracy": ("ferplus", "count"),
               "wild_verification_accuracy": ("celeba_wild", "identity", "pairs"),
               "wild_gender_accuracy": ("celeba_wild", "count"), "wild_smiling_auc": ("celeba_wild", "count")}


def validation_counts(folder: Path) -> dict[str, int]:
    """How many held-out faces (pairs, for verification) each FIGURES key was measured on, from
    an exported weights folder's config.json; {} where it has no validation report."""
    config = Path(folder) / CONFIG_FILE
    if not config.is_file():
        return {}
    report = json.loads(config.read_text(encoding="utf-8")).get("metrics", {}).get("validation", {})
    counts = {}
    for key, path in COUNT_PATHS.items():
        value = report
        for step in path:
            value = value.get(step) if isinstance(value, dict) else None
        if value:
            counts[key] = int(value)
    return counts


def sampling_noise(key: str, value: float, count: int) -> float:
    """The standard error of one validation figure from its held-out sample alone: sqrt(p(1-p)/n)
    for an accuracy; for age MAE, MAE/sqrt(n) (absolute errors spread about as widely as their
    mean, as an exponential's do). Verification pairs share 55 people, so for it this is a lower
    bound, which makes the "flat" verdict below harder to reach, not easier."""
    if key in LOWER_IS_BETTER:
        return value / np.sqrt(count)
    return float(np.sqrt(value * (1 - value) / count))


def flatness(rows: list[dict], window_hours: float, counts: dict[str, int] | None = None) -> dict[str, dict]:
    """For the rows of the last ``window_hours``: each figure's min, max, first, last,
    least-squares slope per hour and that slope's standard error (NaN from two epochs; figures
    logged fewer than twice there are left out). The error treats epochs as independent, which
    successive epochs of one run are not, so it is a lower bound on the slope's uncertainty.

    With ``counts`` (``validation_counts``): also ``change``, the fitted line's rise over the
    window's hours, ``noise``, the figure's sampling standard error (``sampling_noise``), and a
    ``verdict``: "improving" or "worsening" where the change exceeds the noise in that direction
    (age MAE improves downwards), else "flat"."""
    end = rows[-1]["hours"]
    window = [r for r in rows if r["hours"] >= end - window_hours]
    summary = {}
    for key, title in FIGURES.items():
        logged = [r for r in window if r[key] is not None]  # older runs lack some figures
        if len(logged) < 2:
            continue
        hours, values = np.array([r["hours"] for r in logged]), np.array([r[key] for r in logged], float)
        summary[title] = {"min": float(values.min()), "max": float(values.max()), "first": float(values[0]),
                          "last": float(values[-1]), **_slope(hours, values)}
        if counts and key in counts:
            change = summary[title]["slope_per_hour"] * float(hours[-1] - hours[0])
            noise = sampling_noise(key, float(values.mean()), counts[key])
            better = -change if key in LOWER_IS_BETTER else change
            verdict = "improving" if better > noise else "worsening" if better < -noise else "flat"
            summary[title].update(change=change, noise=noise, verdict=verdict)
    return summary


def _slope(hours: np.ndarray, values: np.ndarray) -> dict[str, float]:
    """Least-squares slope of values over hours and its standard error (NaN below 3 points)."""
    slope, intercept = np.polyfit(hours, values, 1)
    residuals = values - (slope * hours + intercept)
    spread = float(((hours - hours.mean()) ** 2).sum())
    error = float(np.sqrt((residuals**2).sum() / (len(hours) - 2) / spread)) if len(hours) > 2 else float("nan")
    return {"slope_per_hour": float(slope), "slope_se": error}
