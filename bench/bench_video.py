"""Benchmark video analysis: frames/s, faces/s and wall time over clip duration, per clip.

    python bench/bench_video.py [--fps F] [--threads N] [--device cpu] [--videos ../shared/data/videos]

A ratio (wall / duration) at or below 1 means the clip is analysed at least as fast as it
plays. The model loads and warms up once before timing (the app and CLI load it once too).
The load average printed before and after says whether other work shared the CPU. When it
did, wall time overstates the cost: CPU time (this process's threads plus ffmpeg) is the
steadier figure, and on a free CPU the wall time is at most about the CPU time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing


def _cpu_seconds() -> float:
    # User + system time of this process's threads and of its finished children (ffmpeg).
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> None:
    import torch

    from face_mtl import FaceAnalyzer
    from face_mtl.video import DEFAULT_FPS, analyze_video

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fps", type=float, default=DEFAULT_FPS, help=f"sampling rate (default {DEFAULT_FPS:g})"
    )
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--videos", type=Path, default=ROOT.parent / "shared" / "data" / "videos")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's, one per core)")
    args = parser.parse_args()
    if args.threads:
        # Fewer threads than cores helps when other work shares the CPU: idle threads spin-wait.
        torch.set_num_threads(args.threads)

    clips = sorted(
        p for p in args.videos.glob("*") if p.suffix.lower() in (".mp4", ".mov", ".webm", ".avi", ".mkv")
    )
    if not clips:
        sys.exit(f"no clips in {args.videos}")
    analyzer = FaceAnalyzer(device=args.device)
    quiet = lambda done, total: None  # noqa: E731
    analyze_video(ROOT / "examples" / "two_people.mp4", analyzer, fps=1, progress=quiet)  # warm-up

    print(
        f"device {analyzer.device}, torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}, "
        f"sampling {args.fps:g} fps, load average before {os.getloadavg()[0]:.2f}"
    )
    header = f"{'clip':<28} {'dur s':>6} {'fps':>5} {'frames':>6} {'faces':>5} {'wall s':>7} "
    header += (
        f"{'frames/s':>8} {'faces/s':>7} {'wall/dur':>8} {'cpu s':>6} {'cpu/dur':>7}  detect/predict/decode s"
    )
    print(header)
    total_wall = total_cpu = total_duration = 0.0
    for clip in clips:
        started, cpu_started = time.perf_counter(), _cpu_seconds()
        result = analyze_video(clip, analyzer, fps=args.fps, max_duration=None, progress=quiet)
        wall, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_started
        total_wall += wall
        total_cpu += cpu
        total_duration += result.duration
        t = result.timings
        print(
            f"{clip.name:<28} {result.duration:>6.1f} {result.fps:>5g} {result.frames:>6} {result.faces:>5} "
            f"{wall:>7.2f} {result.frames / wall:>8.2f} {result.faces / wall:>7.2f} {wall / result.duration:>8.2f} "
            f"{cpu:>6.1f} {cpu / result.duration:>7.2f}  {t['detect_s']:.1f}/{t['predict_s']:.1f}/{t['decode_s']:.1f}"
        )
    print(
        f"all clips: {total_wall:.1f} s wall, {total_cpu:.1f} s CPU for {total_duration:.1f} s of video "
        f"(wall/dur {total_wall / total_duration:.2f}, cpu/dur {total_cpu / total_duration:.2f}); "
        f"load average after {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
