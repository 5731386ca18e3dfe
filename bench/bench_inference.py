"""Inference speed of the shipped configuration (prints figures; not a test).

    python bench/bench_inference.py [--weights W] [--repeats N] [--precision fp32 bf16]

Reports faces/s of ``predict_crops`` for several batch sizes and seconds per ``analyze`` call
on a 1024 px photo with four faces, on cpu and, when present, cuda, for each inference
precision (fp32, and bf16 autocast where the CPU has native bfloat16), with the weights'
test-time flip setting (on for the shipped weights: each face runs twice).
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from face_mtl import FaceAnalyzer
from face_mtl.images import load_image

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def four_face_photo(side: int = 1024) -> np.ndarray:
    """examples/group.jpg (four faces) scaled so its longer side is ``side`` pixels."""
    image = Image.fromarray(load_image(EXAMPLES / "group.jpg"))
    scale = side / max(image.size)
    return np.asarray(image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR))


def timed(function, repeats: int) -> list[float]:
    function()  # warm-up: first calls allocate and pick kernels
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"],
                        help="inference precisions to time, one after the other (default: both)")
    parser.add_argument("--max-side", type=int, nargs="*", default=[],
                        help="also time analyze with these detector max_side values")
    args = parser.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    rng = np.random.default_rng(0)
    for device, precision in [(d, p) for d in devices for p in args.precision]:
        analyzer = FaceAnalyzer(weights=args.weights, device=device, inference_precision=precision)
        config = analyzer.config
        print(f"\n[{device}, {precision}] backbone {config.backbone}, input {config.input_size} px, "
              f"test-time flip {analyzer.test_time_flip}")
        for crop_side, channels in ((48, 1), (config.input_size, 3)):
            for batch in (32, 128, 512):
                shape = (crop_side, crop_side) if channels == 1 else (crop_side, crop_side, 3)
                crops = [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(batch)]
                best = min(timed(partial(analyzer.predict_crops, crops), args.repeats))
                print(f"predict_crops  {crop_side}x{crop_side}x{channels}  batch {batch:4d}: {batch / best:8.0f} faces/s")
        photo = four_face_photo()
        faces = analyzer.analyze(photo)
        times = timed(partial(analyzer.analyze, photo), args.repeats)
        print(f"analyze {photo.shape[1]}x{photo.shape[0]} photo, {len(faces)} faces "
              f"(detector max_side {analyzer.detector.settings.max_side}): "
              f"median {statistics.median(times):.3f} s, best {min(times):.3f} s per call")
        for max_side in args.max_side:
            variant = FaceAnalyzer(weights=args.weights, device=device, max_side=max_side)
            found = len(variant.analyze(photo))
            times = timed(partial(variant.analyze, photo), args.repeats)
            print(f"  max_side {max_side}: {found} faces, median {statistics.median(times):.3f} s per call")


if __name__ == "__main__":
    main()
