"""Training-time identity teacher: dlib's face descriptor, cached once per training photo.

dlib's ``dlib_face_recognition_resnet_model_v1`` (public domain, CC0; about 0.98 on LFW) maps a
face to a 128-d descriptor. The student's identity embedding is pulled towards it during
training (a cosine loss), so the small network learns identity from a model that has seen
thousands of people rather than from the few hundred CelebA people here.

Training only: dlib comes with the ``[train]`` extra (``dlib-bin``, ``face-recognition-models``)
and nothing at run time imports this module.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..data.sets import (
    CACHE_MARGIN,
    FERPLUS_UPSAMPLE,
    PHOTO_VIEWS,
    SPLITS,
    TEACHER_SIZE,
    TEACHER_VIEWS,
    CropSet,
    load_ferplus,
    teacher_folder,
    upsampled_rgb,
    views_of,
    wild_boxes,
    wild_upsampled,
)
from ..images import load_image


class TeacherUnavailableError(RuntimeError):
    """dlib or its model files are missing (install the ``[train]`` extra)."""


def dlib_model_files() -> tuple[Path, Path]:
    """Paths of dlib's 5-point shape predictor and face descriptor network.

    Found through the package's location: importing ``face_recognition_models`` needs
    ``pkg_resources``, which recent setuptools no longer ships.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise TeacherUnavailableError("face-recognition-models is not installed: pip install -e '.[train]'")
    models = Path(list(spec.submodule_search_locations)[0]) / "models"
    files = models / "shape_predictor_5_face_landmarks.dat", models / "dlib_face_recognition_resnet_model_v1.dat"
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise TeacherUnavailableError(f"dlib model files missing: {', '.join(missing)}")
    return files


class _DlibTeacher:
    """dlib's landmark predictor and descriptor network, loaded once per process."""

    def __init__(self) -> None:
        try:
            import dlib
        except ImportError as error:
            raise TeacherUnavailableError("dlib is not installed: pip install -e '.[train]'") from error
        predictor_file, network_file = dlib_model_files()
        self.dlib = dlib
        self.predictor = dlib.shape_predictor(str(predictor_file))
        self.network = dlib.face_recognition_model_v1(str(network_file))

    def describe(self, image: np.ndarray, box) -> np.ndarray:
        """The descriptor of the face in ``box`` (x1, y1, x2, y2 pixels) of an RGB image."""
        rect = self.dlib.rectangle(*(int(round(float(v))) for v in box))
        return np.asarray(self.network.compute_face_descriptor(image, self.predictor(image, rect)), np.float32)


_worker_teacher: _DlibTeacher | None = None


def _init_worker() -> None:
    global _worker_teacher
    _worker_teacher = _DlibTeacher()


def _image(source) -> np.ndarray:
    """An RGB image from a photo's path, or the image itself (FER+ images come as arrays)."""
    return source if isinstance(source, np.ndarray) else load_image(Path(source))


def _describe_chunk(job: tuple[list, np.ndarray]) -> np.ndarray:
    sources, boxes = job
    return np.stack([_worker_teacher.describe(_image(s), b) for s, b in zip(sources, boxes)])


@contextlib.contextmanager
def _teacher_pool(workers: int):
    """``workers`` processes with dlib loaded once each, or None for one process."""
    if workers <= 1:
        yield None
        return
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
        yield pool


def dlib_descriptors(paths: list, boxes: np.ndarray, desc: str = "dlib descriptors", workers: int = 1,
                     pool=None) -> np.ndarray:
    """dlib face descriptors (N x 128 float32, as dlib returns them: not unit length) of the
    face in ``boxes[i]`` (x1, y1, x2, y2 pixels) of each photo ``paths[i]`` (a path, or an
    RGB image array).

    ``workers`` > 1 describes chunks of faces in that many processes (dlib runs one face on
    one core), results in the input order; ``pool`` (from ``_teacher_pool``) reuses processes
    that already loaded dlib across calls."""
    if pool is None and workers > 1:
        with _teacher_pool(workers) as pool:
            return dlib_descriptors(paths, boxes, desc, pool=pool)
    out = np.zeros((len(paths), TEACHER_SIZE), np.float32)
    if pool is None:
        teacher = _DlibTeacher()
        for i, (path, box) in enumerate(zip(tqdm(paths, desc=desc, unit="face", mininterval=10), boxes)):
            out[i] = teacher.describe(_image(path), box)
        return out
    size = 25  # faces per job: small enough to keep every worker busy to the end
    sources = [p if isinstance(p, np.ndarray) else str(p) for p in paths]
    jobs = [(sources[s : s + size], boxes[s : s + size]) for s in range(0, len(paths), size)]
    with tqdm(total=len(paths), desc=desc, unit="face", mininterval=10) as bar:
        for start, vectors in zip(range(0, len(paths), size), pool.imap(_describe_chunk, jobs)):
            out[start : start + len(vectors)] = vectors
            bar.update(len(vectors))
    return out


def teacher_path(cache_dir: Path, name: str, views: str = PHOTO_VIEWS) -> Path:
    return Path(cache_dir) / teacher_folder(views) / f"{name}.npz"


CROP_VIEW_FACE = 192  # pixels across the face when the teacher sees a student's crop (dlib aligns to 150)


def crop_view(crop: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """A cached margin crop (CACHE_MARGIN around the face) as the teacher sees it: enlarged so
    the face is CROP_VIEW_FACE pixels across, edge-padded by its own side for the landmark
    predictor's context; returns (image, face box)."""
    from PIL import Image

    side = crop.shape[0]
    scale = CROP_VIEW_FACE * (1 + 2 * CACHE_MARGIN) / side
    big = round(side * scale)
    image = np.asarray(Image.fromarray(crop).resize((big, big), Image.BICUBIC))
    image = np.pad(image, ((big, big), (big, big), (0, 0)), mode="edge")
    inset = big * CACHE_MARGIN / (1 + 2 * CACHE_MARGIN)
    return image, (big + inset, big + inset, 2 * big - inset, 2 * big - inset)


# Sets of whole FER+ images (no detection: each image is a face crop), by their npz file.
FERPLUS_TEACHER_SETS = {"ferplus_train": "train.npz"}


DEFAULT_SETS = ("celeba_val", "celeba_train", "utk_train", "celeba_wild_train", "celeba_wild_val")


def build_teacher_cache(
    cache_dir: Path, names: tuple[str, ...] = DEFAULT_SETS, chunk: int = 500,
    workers: int = 1, data_dir: Path = Path("../shared/data"), views: str = PHOTO_VIEWS,
) -> None:
    """Descriptors of every found face in the detection cache ``boxes/NAME.npz`` (built by
    ``build_splits``), saved as ``teacher/NAME.npz`` in the order of the CropSet of that name.
    ``ferplus_train`` (FERPLUS_TEACHER_SETS) is read from ``data_dir`` instead: the training
    images of ``read_ferplus``, upsampled as for detection, the whole image as the face's box.

    Faces are described in a fixed random order and the file is rewritten every ``chunk``
    faces, rows not done yet left at zero (= no teacher): training can start from a partial
    cache, and an interrupted build resumes where it stopped.

    ``views`` "crops64" (``views_of``): describe the student's own cached crops at that input size
    instead (``crop_view``; every split of the crop cache), into ``teacher_crops{size}/``: the
    teacher then describes only what the student can see.
    """
    with _teacher_pool(workers) as pool:  # one set of processes (and dlib loads) for every chunk
        for name in names:
            faces = _faces_of(cache_dir, data_dir, name) if views == PHOTO_VIEWS else _crops_of(cache_dir, views, name)
            _describe_set(cache_dir, name, faces, chunk, pool, views)


@dataclass(frozen=True)
class _Faces:
    """The faces of one set, in its CropSet's order: a name, a box, and where the image is."""

    names: np.ndarray  # N strings
    boxes: np.ndarray  # N x 4 (x1, y1, x2, y2 pixels)
    source: Callable[[int], Any]  # face index -> photo path or RGB image


def _faces_of(cache_dir: Path, data_dir: Path, name: str) -> _Faces:
    if name in FERPLUS_TEACHER_SETS:
        kept = load_ferplus(Path(data_dir) / "ferplus" / FERPLUS_TEACHER_SETS[name])  # read_ferplus's images
        side = kept.pixels.shape[1] * FERPLUS_UPSAMPLE
        names = np.array([f"{FERPLUS_TEACHER_SETS[name]}:{i}" for i in kept.rows])
        boxes = np.tile(np.array([0, 0, side, side], np.float32), (len(kept.rows), 1))
        return _Faces(names, boxes, lambda k: upsampled_rgb(kept.pixels[k]))
    if name.startswith("celeba_wild_"):
        # Every photo is a face (read_celeba_wild keeps them all), its box on the upsampled
        # image: dlib's own detector misses some of these small faces, its landmarks do not.
        boxes, files = wild_boxes(cache_dir, name)
        return _Faces(files, boxes, lambda k: wild_upsampled(Path(str(files[k]))))
    with np.load(Path(cache_dir) / "boxes" / f"{name}.npz") as data:
        boxes, found, files = data["boxes"], data["found"], data["names"]
    chosen = np.flatnonzero(found)
    return _Faces(files[chosen], boxes[chosen], lambda k: Path(str(files[chosen[k]])))


def _crops_of(cache_dir: Path, views: str, name: str) -> _Faces:
    crops = CropSet.load(Path(cache_dir) / views / f"{name}.npz").crops
    box = np.array(crop_view(crops[0])[1], np.float32) if len(crops) else np.zeros(4, np.float32)
    return _Faces(np.array([f"{views}/{name}:{i}" for i in range(len(crops))]), np.tile(box, (len(crops), 1)),
                  lambda k: crop_view(crops[k])[0])


def _describe_set(cache_dir: Path, name: str, faces: _Faces, chunk: int, pool, views: str = PHOTO_VIEWS) -> None:
    """``build_teacher_cache`` for one set."""
    out = teacher_path(cache_dir, name, views)
    vectors = np.zeros((len(faces.names), TEACHER_SIZE), np.float32)
    if out.exists():
        with np.load(out) as data:
            if np.array_equal(data["names"], faces.names):
                vectors = data["teacher"]
    todo = [i for i in np.random.default_rng(0).permutation(len(faces.names)) if not vectors[i].any()]
    out.parent.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(todo), chunk):
        rows = todo[start : start + chunk]
        vectors[rows] = dlib_descriptors(
            [faces.source(i) for i in rows], faces.boxes[rows],
            desc=f"{name} {start + len(rows)}/{len(todo)}", pool=pool,
        )
        tmp = out.with_suffix(".tmp.npz")
        np.savez(tmp, teacher=vectors, names=faces.names)
        tmp.replace(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Cache dlib face descriptors of the training faces")
    parser.add_argument("--cache", default=".cache", help="crop cache folder (default .cache)")
    # Photo sets of the detection cache (boxes on photo files), or whole FER+ training images.
    describable = [name for name in SPLITS if name.startswith(("utk_", "celeba_")) or name in FERPLUS_TEACHER_SETS]
    parser.add_argument("--sets", nargs="+", default=list(DEFAULT_SETS), choices=describable,
                        help=f"sets to describe: detection-cache sets (default: {' '.join(DEFAULT_SETS)}) "
                             "or ferplus_train (28k more faces to distil on; about 25 minutes with --workers 2)")
    parser.add_argument("--data", default="../shared/data",
                        help="data folder, to build the detection cache when missing (default ../shared/data)")
    parser.add_argument("--input-size", type=int, default=64,
                        help="crop size of the crop cache built with it (default 64, the shipped network's)")
    parser.add_argument("--views", choices=TEACHER_VIEWS, default=PHOTO_VIEWS,
                        help="photos: the teacher sees each photo (default); crops: it sees the student's cached "
                             "crops at --input-size, enlarged (every split of the crop cache; teacher_cropsN/)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes describing faces at once, one core each (default 1: training "
                             "beside it keeps the rest; use the machine's cores when nothing else runs)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    cache = Path(args.cache)
    if args.views == "crops":
        from ..data.sets import build_splits, crop_cache_complete

        if not crop_cache_complete(cache, args.input_size):
            build_splits(Path(args.data), cache, args.input_size)
        build_teacher_cache(cache, tuple(args.sets), workers=args.workers, views=views_of(args.views, args.input_size))
        return
    if any(not (cache / "boxes" / f"{name}.npz").exists() for name in args.sets if name not in FERPLUS_TEACHER_SETS):
        from ..data.sets import build_splits

        # A new machine: detect every training face first (what training would do; minutes).
        build_splits(Path(args.data), cache, args.input_size)
    build_teacher_cache(cache, tuple(args.sets), workers=args.workers, data_dir=Path(args.data))


if __name__ == "__main__":
    main()
