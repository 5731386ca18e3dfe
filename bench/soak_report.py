"""Turn a ``bench/load_test.py --json`` report into a Markdown page: RSS and temp folders per minute.

    python bench/soak_report.py report.json > docs/soak.md.part
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def growth(rows: list[dict], minutes: float) -> float:
    """RSS growth (MB) over the last ``minutes`` of the per-minute rows."""
    last = rows[-1]
    start = min(rows, key=lambda r: abs(r["minute"] - (last["minute"] - minutes)))
    return round(last["rss_mb"] - start["rss_mb"], 1)


def markdown(report: dict) -> str:
    rows = report["per_minute"]
    lines = [
        f"Users: {report['users']}; measured {report['measured_s'] / 60:.1f} minutes after "
        f"{report['warmup_s']:.0f} s of warm-up; {report['requests']} requests measured "
        f"({', '.join(f'{k} {v}' for k, v in report['outcomes'].items())}); unexpected failures: "
        f"{report['unexpected'] or 'none'}.",
        "",
        f"RSS (MB): before {report['rss_mb']['before']}, after warm-up {report['rss_mb']['after_warmup']}, "
        f"end {report['rss_mb']['end']}, max {report['rss_mb']['max']}; growth over the last 30 minutes: "
        f"**{growth(rows, 30)} MB**. Temp folders (MB): {report['temp_mb']}.",
        "",
        "| minute | RSS (MB) | temp folders (MB) | requests answered in that minute |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['minute']} | {r['rss_mb']} | {r['temp_mb']} | {r['requests_last_minute']} |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    args = parser.parse_args(argv)
    print(markdown(json.loads(args.report.read_text(encoding="utf-8"))), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
