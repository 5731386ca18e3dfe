"""Benchmark the Live tab: frames/s and per-frame latency of the tab's own frame handler.

    python bench/bench_live.py [--clip examples/two_people.mp4] [--frames 120] [--warmup 15]

A real clip is fed frame by frame, as 640x480 camera frames, through
``face_mtl.ui.live.make_live_step`` (the function the tab streams into: downscaling,
detection, the network, tracking and smoothing, drawing, JPEG encoding and the chart every
half second). Two cases, one line each, one face first:

    1 face: X frames/s, p50 Y ms, p95 Z ms
    4 faces: X frames/s, p50 Y ms, p95 Z ms

One face: the clip's left half (one person) centred on a 640x480 canvas. Four faces: the clip
twice, two seconds apart, stacked (each 640x240), so four people move independently. Frames
are fed back to back (as fast as the handler returns), so frames/s is the most the tab could
show one viewer. The load average goes to stderr: other work on the CPU slows every figure.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

WIDTH, HEIGHT = 640, 480


def _resize(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(frame).resize((width, height), Image.BILINEAR))


def one_face_frames(frames: list[np.ndarray]) -> list[np.ndarray]:
    """The left person of each frame, scaled to fill the canvas height, on a grey canvas."""
    out = []
    for frame in frames:
        height, width = frame.shape[:2]
        half = frame[:, : width // 2]
        scaled = _resize(half, round(half.shape[1] * HEIGHT / height), HEIGHT)
        canvas = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
        left = (WIDTH - scaled.shape[1]) // 2
        canvas[:, left : left + scaled.shape[1]] = scaled
        out.append(canvas)
    return out


def four_face_frames(frames: list[np.ndarray], offset: int) -> list[np.ndarray]:
    """Frame i over frame i + ``offset`` (both 640x240): the clip's two people, twice."""
    n = len(frames)
    return [
        np.concatenate([_resize(frames[i], WIDTH, HEIGHT // 2), _resize(frames[(i + offset) % n], WIDTH, HEIGHT // 2)])
        for i in range(n)
    ]


def run_case(step, frames: list[np.ndarray], count: int, warmup: int) -> tuple[float, np.ndarray, list[int]]:
    """(frames/s, per-frame seconds, faces per frame) over ``count`` frames after ``warmup``."""
    state = None
    for i in range(warmup):
        _, _, _, state = step(frames[i % len(frames)], state)
    latencies, faces = [], []
    start = time.perf_counter()
    for i in range(count):
        t0 = time.perf_counter()
        html, _, _, state = step(frames[(warmup + i) % len(frames)], state)
        latencies.append(time.perf_counter() - t0)
        faces.append(int(html.split('data-faces="', 1)[1].split('"', 1)[0]))
    wall = time.perf_counter() - start
    return count / wall, np.array(latencies), faces


def main() -> None:
    from face_mtl import FaceAnalyzer
    from face_mtl.ui.live import make_live_step
    from face_mtl.video import probe_video, read_frames

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default=str(ROOT / "examples" / "two_people.mp4"))
    parser.add_argument("--frames", type=int, default=120, help="timed frames per case (default 120)")
    parser.add_argument("--warmup", type=int, default=15, help="untimed frames first (default 15)")
    args = parser.parse_args()

    info = probe_video(args.clip)
    clip = [np.array(f) for f in read_frames(info, None, (info.width, info.height))]
    step = make_live_step(FaceAnalyzer(device="cpu"))
    print(f"load average before: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    cases = [("1 face", one_face_frames(clip), 1), ("4 faces", four_face_frames(clip, len(clip) // 2), 4)]
    for name, frames, expected in cases:
        rate, latencies, faces = run_case(step, frames, args.frames, args.warmup)
        p50, p95 = np.percentile(latencies, [50, 95]) * 1000
        print(f"{name}: {rate:.1f} frames/s, p50 {p50:.0f} ms, p95 {p95:.0f} ms", flush=True)
        share = np.mean(np.array(faces) == expected)
        print(f"  ({name}: {expected} faces found in {share:.0%} of frames)", file=sys.stderr)
    print(f"load average after: {os.getloadavg()[0]:.2f}", file=sys.stderr)


if __name__ == "__main__":
    main()
