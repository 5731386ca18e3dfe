"""Keep a finished run in the repository: its exported weights, its log and its settings.

Machines come and go between sessions, and ``runs/`` goes with them. What the next run needs
(the weights to continue from) and what the learning curve needs (``train.log``) are copied
into tracked folders, so committing them is all that is left:

    python -m face_mtl.train.persist runs/r18aa

writes ``training/resnet18_64_last_run/{model.safetensors,config.json}`` and
``training/logs/r18aa/{train.log,settings.json,config.json}``.
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..weights import CONFIG_FILE, WEIGHTS_FILE
from .loop import EXPORT_DIR, SETTINGS_FILE
from .runlog import LOG_NAME


@dataclass(frozen=True)
class PersistedRun:
    weights_dir: Path
    logs_dir: Path
    files: tuple[Path, ...]


def persist_run(run_dir: str | Path, weights_dir: str | Path, logs_root: str | Path) -> PersistedRun:
    """Copy ``run_dir``'s export into ``weights_dir`` (replacing what is there) and its log,
    settings and exported config into ``logs_root/<run name>``.

    Everything is checked before anything is copied: a run that has not exported yet (still
    training, or stopped early) leaves both folders as they were."""
    run_dir = Path(run_dir)
    export = run_dir / EXPORT_DIR
    weights_sources = [export / WEIGHTS_FILE, export / CONFIG_FILE]
    log_sources = [run_dir / LOG_NAME, run_dir / SETTINGS_FILE, export / CONFIG_FILE]
    missing = [str(path) for path in [*weights_sources, *log_sources] if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"{run_dir} is not a finished run: missing {', '.join(sorted(set(missing)))}")
    weights_dir, logs_dir = Path(weights_dir), Path(logs_root) / run_dir.resolve().name
    if weights_dir.resolve() == export.resolve():
        raise ValueError(f"{weights_dir} is the run's own export folder")
    copied = []
    for sources, target in ((weights_sources, weights_dir), (log_sources, logs_dir)):
        target.mkdir(parents=True, exist_ok=True)
        for source in sources:
            destination = target / source.name
            shutil.copyfile(source, destination)  # contents only: no read-only modes carried over
            copied.append(destination)
    return PersistedRun(weights_dir=weights_dir, logs_dir=logs_dir, files=tuple(copied))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Copy a finished run's export, log and settings into tracked folders, ready to commit")
    parser.add_argument("run_dir", help="the run's folder (its --run-dir), with export/ written")
    parser.add_argument("--weights", default="training/resnet18_64_last_run",
                        help="folder the exported weights replace (default training/resnet18_64_last_run)")
    parser.add_argument("--logs", default="training/logs",
                        help="the run's log goes to LOGS/<run name> (default training/logs)")
    args = parser.parse_args(argv)
    try:
        persisted = persist_run(args.run_dir, args.weights, args.logs)
    except (FileNotFoundError, ValueError) as error:
        parser.exit(2, f"persist: error: {error}\n")
    for path in persisted.files:
        print(path)
    print(f"commit them: git add {persisted.weights_dir} {persisted.logs_dir}")


if __name__ == "__main__":
    main()
