"""Inference speed of the shipped configuration (prints figures; not a test).

    python bench/bench_inference.py [--weights W] [--repeats N] [--precision fp32 bf16] [--runtime onnx torch]

Reports faces/s of ``predict_crops`` for several batch sizes and seconds per ``analyze`` call
on a 1024 px photo with four faces, on cpu and, when present, cuda, for each inference
precision (fp32, and bf16 autocast where the CPU has native bfloat16) and CPU runtime
(ONNX Runtime, torch's traced graph; bf16 always runs in torch), with the weights' test-time
flip setting (on for the shipped weights: each face runs twice). Run it on an otherwise idle
machine.
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
from face_mtl.detect import DEFAULT_MAX_SIDE
from face_mtl.images import load_image
from face_mtl.model import runner_runtime

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
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per figure and round (best kept)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds; each times every configuration in turn (default 3). Medians are "
                             "reported, so a slow spell of a shared machine hits all configurations alike")
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"],
                        help="inference precisions to time (default: both)")
    parser.add_argument("--runtime", nargs="+", default=["onnx", "torch"], choices=["onnx", "torch"],
                        help="CPU runtimes to time in fp32 (default: both)")
    parser.add_argument("--max-side", type=int, nargs="*", default=[],
                        help="also time analyze with these detector max_side values")
    args = parser.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} rounds (median; every round in brackets)")
    runs = [(d, p, r) for d in devices for p in args.precision for r in args.runtime]
    # bf16 and other devices run in torch whatever the runtime (ONNX Runtime refuses them): time
    # them once, under the runtime "auto".
    runs = list(dict.fromkeys((d, p, r if d == "cpu" and p == "fp32" else "auto") for d, p, r in runs))
    analyzers = {
        run: FaceAnalyzer(weights=args.weights, device=run[0], inference_precision=run[1], runtime=run[2])
        for run in runs
    }
    rng = np.random.default_rng(0)
    photo = four_face_photo()
    side = next(iter(analyzers.values())).config.input_size
    crop_sets = {
        f"predict_crops  {crop_side}x{crop_side}x{channels}  batch {batch:4d}": [
            rng.integers(0, 256, (crop_side, crop_side) if channels == 1 else (crop_side, crop_side, 3), dtype=np.uint8)
            for _ in range(batch)
        ]
        for crop_side, channels in ((48, 1), (side, 3))
        for batch in (32, 128, 512)
    }
    # figures[run][label]: one value per round (faces/s, or seconds per analyze call)
    figures = {run: {label: [] for label in [*crop_sets, "analyze"]} for run in runs}
    for _ in range(max(1, args.rounds)):
        for run, analyzer in analyzers.items():
            for label, crops in crop_sets.items():
                figures[run][label].append(len(crops) / min(timed(partial(analyzer.predict_crops, crops), args.repeats)))
            figures[run]["analyze"].append(statistics.median(timed(partial(analyzer.analyze, photo), args.repeats)))
    for run, analyzer in analyzers.items():
        config = analyzer.config
        print(f"\n[{run[0]}, {run[1]}, runner {runner_runtime(analyzer._runner)}] backbone {config.backbone}, "
              f"input {config.input_size} px, test-time flip {analyzer.test_time_flip}")
        for label in crop_sets:
            values = figures[run][label]
            spread = ", ".join(f"{v:.0f}" for v in values)
            print(f"{label}: {statistics.median(values):8.0f} faces/s  ({spread})")
        values = figures[run]["analyze"]
        spread = ", ".join(f"{v:.3f}" for v in values)
        print(f"analyze {photo.shape[1]}x{photo.shape[0]} photo, {len(analyzer.analyze(photo))} faces "
              f"(detector max_side {DEFAULT_MAX_SIDE}): median {statistics.median(values):.3f} s "
              f"per call ({spread})")
        for max_side in args.max_side:
            variant = FaceAnalyzer(weights=args.weights, device=run[0], max_side=max_side)
            found = len(variant.analyze(photo))
            times = timed(partial(variant.analyze, photo), args.repeats)
            print(f"  max_side {max_side}: {found} faces, median {statistics.median(times):.3f} s per call")


if __name__ == "__main__":
    main()
