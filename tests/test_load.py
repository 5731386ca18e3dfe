"""The short load test: bench/load_test.py with 8 users for a minute against ``python app.py``.

No request may fail unexpectedly (bad inputs must be refused with face_mtl's own message), the
server's memory must level off after the warm-up and its temporary folders must stay small.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("gradio_client")

ROOT = Path(__file__).resolve().parent.parent
# Bounds from measurements of this test's settings on the project's 2-core machine, shared with
# training runs (bench/load_test.py --users 8 --minutes 1): the server's resident memory grew
# 51 MB from the end of a 30 s warm-up (43 requests) to the end (80 more requests), 10 MB in a
# second run (46, then 78), and 106 MB after a 20 s warm-up of only 14 requests on a busier
# CPU; with glibc's default malloc arenas (before the app capped them at two) it grew 238 MB
# after the warm-up in 42 requests. Its temporary folders grew by 1 MB over the whole test.
RSS_GROWTH_MB = 200
TEMP_GROWTH_MB = 10


def _load_test_module():
    spec = importlib.util.spec_from_file_location("load_test", ROOT / "bench" / "load_test.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


def test_short_load_test():
    load_test = _load_test_module()
    report = load_test.run(load_test.parse_args(["--users", "8", "--minutes", "1", "--warmup-seconds", "30"]))
    print(report.to_dict())  # shown with -s or on failure
    assert report.unexpected == {}
    assert report.outcomes.get("ok", 0) > 0 and report.outcomes.get("refused", 0) > 0
    assert report.rss_mb["end"] - report.rss_mb["after_warmup"] < RSS_GROWTH_MB
    assert report.temp_mb["end"] - report.temp_mb["before"] < TEMP_GROWTH_MB
    # The per-minute table a long soak is read from: a row for each minute, RSS and temp folders.
    assert len(report.per_minute) >= 2 and report.temp_samples
    assert [row["minute"] for row in report.per_minute] == list(range(len(report.per_minute)))
    assert all(row["rss_mb"] > 100 and row["temp_mb"] >= 0 for row in report.per_minute)
