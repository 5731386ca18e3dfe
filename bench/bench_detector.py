"""Photos per second of face detection alone: facenet-pytorch's ``MTCNN.detect`` against
face_mtl's batched MTCNN (``face_mtl.mtcnn``, the same nets and boxes), on the same photos and
batches, alternating in rounds (prints figures; not a test). Run it on an otherwise idle machine.

    python bench/bench_detector.py [--folder DIR] [--count 256] [--batch 1 16 32] [--rounds 3]

Default photos: UTKFace 200x200 faces from ../shared/data/utkface/images, spread over the
sorted names, decoded into memory first. Both sides use a 20 px smallest face and
facenet-pytorch's stage thresholds; face_mtl's detector is used as ``FaceAnalyzer`` builds it
(traced nets on the CPU), without its final score filter, so both return the same boxes.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from face_mtl.batch import IMAGE_EXTENSIONS
from face_mtl.images import load_image
from face_mtl.mtcnn import MTCNNNets, detect_faces

DEFAULT_FOLDER = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "utkface" / "images"


def photos_per_second(detect, photos: np.ndarray, batch: int) -> float:
    detect(photos[:batch])  # warm-up: first calls pick kernels for these shapes
    start = time.perf_counter()
    for first in range(0, len(photos), batch):
        detect(photos[first : first + batch])
    return len(photos) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=DEFAULT_FOLDER)
    parser.add_argument("--count", type=int, default=256)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16, 32])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    files = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    files = files[:: max(1, len(files) // args.count)][: args.count]
    photos = np.stack([load_image(p) for p in files])  # the same size: UTKFace is 200x200

    from facenet_pytorch import MTCNN

    reference = MTCNN(keep_all=True, min_face_size=20)
    nets = MTCNNNets().trace_for_cpu()
    sides = {
        "facenet-pytorch MTCNN.detect": lambda batch: reference.detect(batch),
        "face_mtl.mtcnn.detect_faces": lambda batch: detect_faces(batch, nets, 20),
    }
    print(f"{len(photos)} photos {photos.shape[2]}x{photos.shape[1]}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {args.rounds} rounds (median)")
    for batch in args.batch:
        rates = {name: [] for name in sides}
        for _ in range(args.rounds):
            for name, detect in sides.items():
                rates[name].append(photos_per_second(detect, photos, batch))
        medians = {name: statistics.median(values) for name, values in rates.items()}
        line = ", ".join(f"{name} {rate:.1f}" for name, rate in medians.items())
        ours, theirs = medians["face_mtl.mtcnn.detect_faces"], medians["facenet-pytorch MTCNN.detect"]
        print(f"batch {batch:3d}: {line} photos/s; ratio {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
