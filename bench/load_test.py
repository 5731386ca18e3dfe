"""Load test: ``python app.py`` on loopback and N concurrent gradio_client users for M minutes.

    python bench/load_test.py                          # 16 users, 10 minutes (after 60 s warm-up)
    python bench/load_test.py --users 8 --minutes 1 --warmup-seconds 20 --json report.json

Users send a mix of good photos (the examples), bad inputs (from tests/bad_inputs.py: files
that are not photos or clips, too small, too large, too long...) and short clips, each picking
at random (seeded) and waiting for the answer before the next request. Every answer is
classified: ``ok`` (a good input analysed), ``refused`` (a bad input answered with face_mtl's
own message naming the file: expected) or an unexpected failure (anything else, by kind).
The report gives requests, outcomes, p50/p95/max latency, the server's resident memory before,
after the warm-up and at the end (sampled every few seconds; /proc), the size of its
temporary folders (sampled every minute), and a per-minute table of both (``per_minute``;
``--progress FILE`` rewrites it every minute while a long soak runs). Everything is bounded: users stop at the deadline or after
``--max-requests-per-user``, each request at ``--request-timeout``, and the server is stopped.
Exit code 1 when any failure was unexpected.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # face_mtl, and the test helpers reused here

from app_server import serve_app  # noqa: E402
from bad_inputs import KINDS_BY_NAME, build_corpus  # noqa: E402

# What users send, with weights: mostly photos, a fair share of bad input, a few short clips.
GOOD_PHOTOS = ("group.jpg", "astronaut.png", "grace_hopper.jpg")
BAD_INPUTS = (
    "photo_text_as_jpg", "photo_truncated_jpeg", "photo_1x1", "photo_decompression_bomb",
    "photo_animated_gif", "photo_heic", "clip_audio_only", "clip_text_as_mp4", "clip_very_long",
)  # fmt: skip
CLIPS = ("clip_unicode_path",)  # two seconds of one face
WEIGHTS = {"photo": 0.6, "bad": 0.3, "clip": 0.1}
SAMPLE_EVERY_S = 5.0
TEMP_EVERY_S = 60.0  # walking the temp folders costs more than reading /proc


@dataclass(frozen=True)
class Job:
    name: str
    path: Path
    api_name: str
    expect_refusal: bool


@dataclass(frozen=True)
class Outcome:
    job: str
    started: float  # seconds since the test began
    seconds: float
    kind: str  # "ok", "refused" or an unexpected kind


@dataclass(frozen=True)
class Report:
    users: int
    warmup_s: float
    measured_s: float
    requests: int
    outcomes: dict[str, int]
    unexpected: dict[str, int]
    latency_s: dict[str, float]
    rss_mb: dict[str, float]
    temp_mb: dict[str, float]
    samples: list[tuple[float, float]] = field(default_factory=list)  # (seconds, RSS MB)
    temp_samples: list[tuple[float, float]] = field(default_factory=list)  # (seconds, temp folders MB)
    per_minute: list[dict] = field(default_factory=list)  # one row a minute: RSS, temp folders, requests
    unexpected_jobs: dict[str, list[str]] = field(default_factory=dict)  # kind -> inputs it hit

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _jobs(corpus: dict[str, Path]) -> dict[str, list[Job]]:
    photos = [Job(n, ROOT / "examples" / n, "/analyze_image", False) for n in GOOD_PHOTOS]
    bad = [
        Job(n, corpus[n], "/analyze_image" if KINDS_BY_NAME[n].media == "photo" else "/analyze_video", True)
        for n in BAD_INPUTS
    ]
    clips = [Job(n, corpus[n], "/analyze_video", False) for n in CLIPS]
    return {"photo": photos, "bad": bad, "clip": clips}


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (VmRSS from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def folder_mb(folder: Path) -> float:
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except FileNotFoundError:  # swept meanwhile
            pass
    return total / 1e6


def _classify(job: Job, call) -> str:
    from gradio_client.exceptions import AppError

    try:
        outputs = call()
    except AppError as error:
        if job.expect_refusal and error.message.startswith(f"{job.path.name}: "):
            return "refused"
        return f"AppError: {error.message[:80]}"
    except TimeoutError:
        return "timeout"
    except Exception as error:  # anything else is what this test is for
        return f"{type(error).__name__}: {str(error)[:80]}"
    if job.expect_refusal:
        return "accepted a bad input"
    if job.api_name == "/analyze_image" and not (outputs and outputs[3] and outputs[3].get("count")):
        return "photo without results"
    if job.api_name == "/analyze_video" and not (outputs and outputs[1] and outputs[1].get("data")):
        return "clip without results"
    return "ok"


def _client(url: str, downloads: Path, timeout: float):
    from gradio_client import Client

    # A busy server answers the client's set-up requests slowly too: wait as long as for a request.
    return Client(
        url,
        verbose=False,
        analytics_enabled=False,
        download_files=str(downloads),
        httpx_kwargs={"timeout": timeout},
    )


def _user(
    client,
    jobs: dict[str, list[Job]],
    rng: random.Random,
    start: float,
    deadline: float,
    args: argparse.Namespace,
    outcomes: list[Outcome],
    lock: threading.Lock,
) -> None:
    from gradio_client import handle_file

    groups, weights = list(WEIGHTS), list(WEIGHTS.values())
    for _ in range(args.max_requests_per_user):
        if time.monotonic() >= deadline:
            break
        job = rng.choice(jobs[rng.choices(groups, weights)[0]])
        began = time.monotonic()
        job_call = client.submit(handle_file(str(job.path)), api_name=job.api_name)
        kind = _classify(job, lambda j=job_call: j.result(timeout=args.request_timeout))
        if kind == "timeout":
            job_call.cancel()
        with lock:
            outcomes.append(Outcome(job.name, began - start, time.monotonic() - began, kind))


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _run_users(clients, rngs, jobs, args, start, until, outcomes, lock) -> None:
    threads = [
        threading.Thread(target=_user, args=(client, jobs, rng, start, until, args, outcomes, lock), daemon=True)
        for client, rng in zip(clients, rngs)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        # A request still running at the deadline gets its timeout, then the thread is left.
        thread.join(timeout=max(0.0, until - time.monotonic()) + args.request_timeout + 30)


def run(args: argparse.Namespace) -> Report:
    """Start the app, warm it up, load it, stop it; the report of the loaded phase."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    with tempfile.TemporaryDirectory(prefix="face_mtl_load_") as folder:
        tmp = Path(folder)
        corpus = build_corpus(tmp / "inputs", [*BAD_INPUTS, *CLIPS])
        jobs = _jobs(corpus)
        server_tmp = tmp / "server_tmp"  # TMPDIR of the server: its exports land here
        server_tmp.mkdir()
        temp_folders = [server_tmp, tmp / "gradio_tmp"]
        env = dict(item.split("=", 1) for item in args.server_env)
        with serve_app(tmp, {**env, "TMPDIR": str(server_tmp)}) as (server, process):
            samples: list[tuple[float, float]] = []
            temp_samples: list[tuple[float, float]] = []
            stop_sampling = threading.Event()
            start = time.monotonic()
            done: list[Outcome] = []  # every answered request so far, for the progress file

            def sample() -> None:
                next_temp = 0.0
                while not stop_sampling.wait(SAMPLE_EVERY_S):
                    now = round(time.monotonic() - start, 1)
                    samples.append((now, round(rss_mb(process.pid), 1)))
                    if now >= next_temp:
                        temp_samples.append((now, round(sum(folder_mb(f) for f in temp_folders if f.exists()), 2)))
                        next_temp = now + TEMP_EVERY_S
                        if args.progress:  # a long run leaves its curve behind even if it is cut short
                            rows = per_minute(samples, temp_samples, list(done))
                            Path(args.progress).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            rss = {"before": rss_mb(process.pid)}
            temp = {"before": sum(folder_mb(f) for f in temp_folders if f.exists())}
            clients = [_client(server.url, tmp / f"downloads{i}", args.request_timeout) for i in range(args.users)]
            rngs = [random.Random(seed) for seed in range(args.users)]
            lock = threading.Lock()
            warmup: list[Outcome] = done
            begun = time.monotonic()
            _run_users(clients, rngs, jobs, args, start, begun + args.warmup_seconds, warmup, lock)
            warmup = list(done)
            rss["after_warmup"] = rss_mb(process.pid)
            temp["after_warmup"] = sum(folder_mb(f) for f in temp_folders if f.exists())
            measured: list[Outcome] = done  # appended after the warm-up's outcomes
            began = time.monotonic()
            _run_users(clients, rngs, jobs, args, start, began + args.minutes * 60, measured, lock)
            measured = done[len(warmup):]
            measured_s = time.monotonic() - began
            rss["end"] = rss_mb(process.pid)
            temp["end"] = sum(folder_mb(f) for f in temp_folders if f.exists())
            stop_sampling.set()
            sampler.join(timeout=SAMPLE_EVERY_S * 2)
            if process.poll() is not None:
                measured.append(Outcome("server", time.monotonic() - start, 0.0, "server exited"))
            rss["max"] = max([rss["end"], *(mb for _, mb in samples)])
    kinds = Counter(o.kind for o in warmup + measured)
    unexpected = {k: n for k, n in kinds.items() if k not in ("ok", "refused")}
    unexpected_jobs = {k: sorted({o.job for o in warmup + measured if o.kind == k}) for k in unexpected}
    latencies = [o.seconds for o in measured]
    by_group = {
        "photo": [o.seconds for o in measured if o.job in GOOD_PHOTOS],
        "clip": [o.seconds for o in measured if o.job in CLIPS],
        "bad": [o.seconds for o in measured if o.job in BAD_INPUTS],
    }
    latency = {"p50": _percentile(latencies, 0.5), "p95": _percentile(latencies, 0.95), "max": max(latencies, default=float("nan"))}
    for group, values in by_group.items():
        latency[f"{group}_p50"] = _percentile(values, 0.5)
    return Report(
        users=args.users,
        warmup_s=args.warmup_seconds,
        measured_s=round(measured_s, 1),
        requests=len(measured),
        outcomes={"warmup": len(warmup), **Counter(o.kind if o.kind in ("ok", "refused") else "unexpected" for o in measured)},
        unexpected=unexpected,
        latency_s={k: round(v, 2) for k, v in latency.items()},
        rss_mb={k: round(v, 1) for k, v in rss.items()},
        temp_mb={k: round(v, 2) for k, v in temp.items()},
        samples=samples,
        temp_samples=temp_samples,
        per_minute=per_minute(samples, temp_samples, warmup + measured),
        unexpected_jobs=unexpected_jobs,
    )


def per_minute(
    samples: list[tuple[float, float]], temp_samples: list[tuple[float, float]], outcomes: list[Outcome]
) -> list[dict]:
    """One row per whole minute since the server came up: the last RSS sample (MB) and temp-folder
    size (MB) at or before it, and the requests answered in that minute (all kinds)."""
    rows = []
    if not samples:
        return rows
    for minute in range(int(samples[-1][0] // 60) + 1):
        t = minute * 60.0
        rss = [mb for s, mb in samples if s <= t] or [samples[0][1]]
        # The first walk of the temp folders lands a few seconds in: minute 0 reads that one.
        temp = [mb for s, mb in temp_samples if s <= t + SAMPLE_EVERY_S] or [mb for _, mb in temp_samples[:1]] or [
            float("nan")]
        answered = sum(1 for o in outcomes if t - 60 <= o.started + o.seconds < t)
        rows.append({"minute": minute, "rss_mb": rss[-1], "temp_mb": temp[-1], "requests_last_minute": answered})
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=16, help="concurrent users (default 16)")
    parser.add_argument("--minutes", type=float, default=10.0, help="measured load, after the warm-up (default 10)")
    parser.add_argument("--warmup-seconds", type=float, default=60.0, help="load before the measurement (default 60)")
    parser.add_argument("--request-timeout", type=float, default=300.0, help="seconds per request (default 300)")
    parser.add_argument("--max-requests-per-user", type=int, default=100_000, help="a bound on each user's loop")
    parser.add_argument("--json", help="also write the report here")
    parser.add_argument("--progress", help="rewrite the per-minute table (JSON) here every minute while running")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable for the server (e.g. FACE_MTL_MAX_FACES=10); repeatable")
    args = parser.parse_args(argv)
    if args.users < 1 or args.minutes <= 0 or args.warmup_seconds < 0:
        parser.error("--users must be >= 1, --minutes > 0 and --warmup-seconds >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    text = json.dumps(report.to_dict(), indent=1)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    summary = {k: v for k, v in report.to_dict().items() if k not in ("samples", "temp_samples", "per_minute")}
    print(json.dumps(summary, indent=1))
    return 1 if report.unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
