"""Rewrite the figures README.md and MODEL_CARD.md quote from the shipped weights' config.json.

    python scripts/sync_figures.py                   # rewrite the marked regions (face_mtl/figures.py)
    python scripts/sync_figures.py --check           # exit 1, naming them, when any region is stale
    face-mtl eval --weights face_mtl/assets --no-pipeline --out eval.json
    python scripts/sync_figures.py --from-eval eval.json   # first put that report into config.json's metrics

After new weights are copied into face_mtl/assets: run the eval line, then the last line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from face_mtl.figures import merge_eval_report, stale_regions, sync_text  # noqa: E402

DOCUMENTS = ("README.md", "MODEL_CARD.md")
CONFIG = ROOT / "face_mtl" / "assets" / "config.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=CONFIG, help="config.json to read (default: the bundled one)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a region is stale")
    parser.add_argument("--from-eval", type=Path, metavar="EVAL_JSON",
                        help="first replace config.json's metrics with this `face-mtl eval --out` report")
    args = parser.parse_args(argv)
    config = json.loads(args.config.read_text(encoding="utf-8"))
    if args.from_eval:
        from face_mtl.config import ModelConfig
        from face_mtl.weights import write_config

        config = merge_eval_report(config, json.loads(args.from_eval.read_text(encoding="utf-8")))
        write_config(args.config.parent, ModelConfig.from_json(args.config).with_updates(metrics=config["metrics"]))
        config = json.loads(args.config.read_text(encoding="utf-8"))  # as written
        print(f"sync_figures: {args.config}: metrics from {args.from_eval}")
    stale = {}
    for name in DOCUMENTS:
        path = ROOT / name
        text = path.read_text(encoding="utf-8")
        if args.check:
            if regions := stale_regions(text, config):
                stale[name] = regions
            continue
        synced = sync_text(text, config)
        if synced != text:
            path.write_text(synced, encoding="utf-8")
            print(f"sync_figures: rewrote {name}")
    for name, regions in stale.items():
        print(f"sync_figures: {name}: stale figure regions: {', '.join(regions)} "
              "(run python scripts/sync_figures.py)", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
