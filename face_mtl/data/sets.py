"""Readers for the training sets and the detection cache.

Every photo goes through the same detector and tight box as inference; the crop is cached
with a margin (``CACHE_MARGIN`` of the box on each side) so augmentation can jitter scale and
shift around that box without re-running detection. FER+ images are already 48x48 face crops
(the detector finds almost nothing at that size), so each whole image is taken as the box.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..config import EMOTIONS
from ..crop import crop_face
from ..detect import DetectorSettings, shared_detector
from ..identity import normalize
from ..images import load_image

CACHE_MARGIN = 0.1
TEACHER_SIZE = 128  # dlib's face descriptor
FERPLUS_COLUMNS = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
    "unknown", "not_face",
)
UTK_NAME = re.compile(r"^(\d+)_([01])_([0-4])_")
# Detection for training keeps harder faces than the app's default threshold; the sets' faces
# fill most of each photo, so small candidate faces are skipped (a shorter MTCNN pyramid).
PREPROCESS_DETECTOR = DetectorSettings(threshold=0.7, min_face_size=48, max_faces=5)


@dataclass(frozen=True)
class CropSet:
    """Cached crops (N x C x C x 3 uint8, tight box inside a CACHE_MARGIN border) + labels.

    Label arrays hold -1 (or NaN for age, zeros for emotion votes) where a sample lacks them.
    """

    crops: np.ndarray
    emotion: np.ndarray  # N x 8 float32 vote distribution over EMOTIONS (all 0 = no label)
    age: np.ndarray  # N float32 years, NaN = no label
    gender: np.ndarray  # N int64 index into GENDERS, -1 = no label
    ethnicity: np.ndarray  # N int64 index into ETHNICITIES, -1 = no label
    identity: np.ndarray  # N int64 class index, -1 = no label
    teacher: np.ndarray  # N x 128 float32 identity teacher's descriptor (train/teacher.py), all 0 = none
    # N x K float32 a reference network's attribute probabilities (train/reference.py); K = 0:
    # none. Omitted (None) when built, it becomes N x 0.
    reference: np.ndarray | None = None
    # N int64 CelebA's "smiling" attribute: 1 smiling, 0 not, -1 no label (None: all -1).
    smiling: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.reference is None:
            object.__setattr__(self, "reference", np.zeros((len(self.crops), 0), np.float32))
        if self.smiling is None:
            object.__setattr__(self, "smiling", np.full(len(self.crops), -1, np.int64))

    def __len__(self) -> int:
        return len(self.crops)

    def subset(self, index: np.ndarray) -> "CropSet":
        return CropSet(*(getattr(self, f)[index] for f in self.__dataclass_fields__))

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **{f: getattr(self, f) for f in self.__dataclass_fields__})
        tmp.replace(path)

    def described(self) -> np.ndarray:
        """Indices of the faces with a teacher descriptor (a non-zero row)."""
        return np.flatnonzero(self.teacher.any(axis=1))

    def with_teacher(self, descriptors: np.ndarray) -> "CropSet":
        return CropSet(**{**self.__dict__, "teacher": descriptors.astype(np.float32)})

    def with_reference(self, targets: np.ndarray) -> "CropSet":
        return CropSet(**{**self.__dict__, "reference": targets.astype(np.float32)})

    @classmethod
    def concat(cls, parts: list["CropSet"]) -> "CropSet":
        """The faces of ``parts`` one after another (their reference targets must be alike wide)."""
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__))

    @classmethod
    def load(cls, path: Path) -> "CropSet":
        with np.load(path) as data:
            fields = {f: data[f] for f in cls.__dataclass_fields__ if f in data}
        # Caches written before the teacher field existed: no descriptors.
        fields.setdefault("teacher", _empty_labels(len(fields["crops"]))["teacher"])
        return cls(**fields)


def _empty_labels(n: int) -> dict[str, np.ndarray]:
    return {
        "emotion": np.zeros((n, len(EMOTIONS)), np.float32),
        "age": np.full(n, np.nan, np.float32),
        "gender": np.full(n, -1, np.int64),
        "ethnicity": np.full(n, -1, np.int64),
        "identity": np.full(n, -1, np.int64),
        "teacher": np.zeros((n, TEACHER_SIZE), np.float32),
    }


def split_of(key: str, val_fraction: float) -> str:
    """Deterministic train/val assignment from a stable hash of ``key``."""
    return "val" if zlib.crc32(key.encode()) % 1000 < val_fraction * 1000 else "train"


# --- FER+ -----------------------------------------------------------------------------------


def ferplus_votes_to_emotions(votes: np.ndarray) -> np.ndarray:
    """N x 10 FER+ votes (FERPLUS_COLUMNS order) -> N x 8 vote counts in EMOTIONS order."""
    order = [FERPLUS_COLUMNS.index(e) for e in EMOTIONS]
    return votes[:, order].astype(np.float32)


def majority_vote(votes: np.ndarray) -> np.ndarray:
    """Column index of each row's top vote, or -1 where the top count is tied or zero."""
    votes = np.asarray(votes)
    top = votes.max(axis=1, keepdims=True)
    tied = (votes == top).sum(axis=1) > 1
    winner = votes.argmax(axis=1)
    winner[tied | (top[:, 0] <= 0)] = -1
    return winner


def ferplus_majority(votes: np.ndarray) -> np.ndarray:
    """FER+ majority protocol: EMOTIONS index of the majority label, or -1 where the
    majority is unknown / not_face or the top vote count is tied."""
    mapping = np.array([EMOTIONS.index(c) if c in EMOTIONS else -1 for c in FERPLUS_COLUMNS] + [-1])
    # -1 (tie) indexes the trailing -1 of the mapping.
    return mapping[majority_vote(votes)]


def ferplus_trainable(votes: np.ndarray) -> np.ndarray:
    """Mask of images whose emotion votes outnumber unknown + not_face (kept for training)."""
    return ferplus_votes_to_emotions(votes).sum(axis=1) > votes[:, 8:].sum(axis=1)


@dataclass(frozen=True)
class FerplusImages:
    """The images of one FER+ npz that training keeps (``ferplus_trainable``), in file order:
    every reader of FER+ (crops, tight crops, teacher descriptors, eval labels) starts here, so
    their rows line up."""

    pixels: np.ndarray  # N x 48 x 48 uint8 grayscale
    votes: np.ndarray  # N x 10 raw votes: 8 emotions (file order), unknown, not_face
    rows: np.ndarray  # N row indices into the npz

    def emotion_labels(self) -> dict[str, np.ndarray]:
        """CropSet labels: the emotion vote shares (EMOTIONS order), the other tasks unlabelled."""
        emotion_votes = ferplus_votes_to_emotions(self.votes)
        labels = _empty_labels(len(self.rows))
        labels["emotion"] = emotion_votes / emotion_votes.sum(axis=1, keepdims=True)
        return labels


def load_ferplus(path: Path) -> FerplusImages:
    """A FER+ npz without the images whose votes are mostly unknown / not_face."""
    with np.load(path) as data:
        pixels, votes = data["pixels"], data["votes"]
    rows = np.flatnonzero(ferplus_trainable(votes))
    return FerplusImages(pixels=pixels[rows], votes=votes[rows], rows=rows)


def read_ferplus(path: Path, size: int) -> CropSet:
    """A FER+ npz as loosely framed whole-image crops (``load_ferplus``'s images)."""
    images = load_ferplus(path)
    crops = np.empty((len(images.rows), *_cache_shape(size)), np.uint8)
    for i, gray in enumerate(tqdm(images.pixels, desc=f"FER+ {path.name}", unit="img", leave=False)):
        rgb = np.repeat(gray[:, :, None], 3, axis=2)
        crops[i] = crop_face(rgb, (0, 0, gray.shape[1], gray.shape[0]), size, CACHE_MARGIN)
    return CropSet(crops=crops, **images.emotion_labels())


FERPLUS_UPSAMPLE = 3  # 48 px images -> 144 px, large enough for MTCNN to find the face


def upsampled_rgb(gray: np.ndarray) -> np.ndarray:
    """A 48 px grayscale FER+ image as RGB, FERPLUS_UPSAMPLE times larger (bicubic)."""
    side = gray.shape[1] * FERPLUS_UPSAMPLE
    return np.asarray(Image.fromarray(gray).resize((side, side), Image.BICUBIC).convert("RGB"))


def read_ferplus_tight(path: Path, size: int, boxes_path: Path | None = None) -> CropSet:
    """FER+ images framed as users' faces are: MTCNN's tight box on the image upsampled
    FERPLUS_UPSAMPLE times. Same images and order as ``read_ferplus``; where no face is
    found the whole image stands in for the box (``tight_found_rate`` counts them)."""
    kept = load_ferplus(path)
    side = kept.pixels.shape[1] * FERPLUS_UPSAMPLE
    images = [upsampled_rgb(gray) for gray in kept.pixels]
    boxes, found = _cached_boxes(boxes_path, [f"{path.name}:{i}" for i in range(len(images))], lambda: _detect_arrays(images))
    crops = np.empty((len(images), *_cache_shape(size)), np.uint8)
    for i, image in enumerate(images):
        box = tuple(boxes[i]) if found[i] else (0, 0, side, side)
        crops[i] = crop_face(image, box, size, CACHE_MARGIN)
    return CropSet(crops=crops, **kept.emotion_labels())


def tight_found_rate(cache_dir: Path) -> float | None:
    """Share of FER+ validation images where MTCNN found the face (read_ferplus_tight)."""
    path = Path(cache_dir) / "boxes" / "ferplus_tight_val.npz"
    if not path.exists():
        return None
    with np.load(path) as data:
        return float(data["found"].mean())


# --- photos through the detector --------------------------------------------------------------


def _cache_shape(size: int) -> tuple[int, int, int]:
    side = round(size * (1 + 2 * CACHE_MARGIN))
    return (side, side, 3)


def _detect_arrays(images: list[np.ndarray], batch: int = 32,
                   settings: DetectorSettings = PREPROCESS_DETECTOR) -> tuple[np.ndarray, np.ndarray]:
    """Box of the largest face in each HxWx3 image; (boxes N x 4, found mask)."""
    detector = shared_detector(settings)
    boxes = np.zeros((len(images), 4), np.float32)
    found = np.zeros(len(images), bool)
    for start in tqdm(range(0, len(images), batch), desc="detecting faces", unit="batch"):
        chunk = images[start : start + batch]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(chunk):
            groups.setdefault(image.shape, []).append(i)
        for members in groups.values():
            results = detector.detect_batch([chunk[i] for i in members])
            for i, detections in zip(members, results):
                if detections:
                    boxes[start + i] = detections[0].box
                    found[start + i] = True
    return boxes, found


def detect_boxes(paths: list[Path], batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Box (x1, y1, x2, y2 pixels) of the largest detected face of each photo; (boxes N x 4, found mask)."""
    boxes = np.zeros((len(paths), 4), np.float32)
    found = np.zeros(len(paths), bool)
    for start in range(0, len(paths), batch * 8):  # decode a few batches at a time, not all photos
        chunk = [load_image(p) for p in paths[start : start + batch * 8]]
        boxes[start : start + len(chunk)], found[start : start + len(chunk)] = _detect_arrays(chunk, batch)
    return boxes, found


def photo_keys(paths: list[Path]) -> list[str]:
    """The names a detection cache files photos under: absolute paths, so that a data folder
    given as ``../shared/data`` or as its absolute path finds the same cached boxes."""
    return [os.path.abspath(p) for p in paths]


def _cached_boxes(boxes_path: Path | None, names: list[str], detect) -> tuple[np.ndarray, np.ndarray]:
    """``detect()`` -> (boxes, found), cached in ``boxes_path`` under the inputs' ``names``
    (a changed input list detects again)."""
    names_array = np.array(names)
    if boxes_path is not None and boxes_path.exists():
        with np.load(boxes_path) as data:
            if np.array_equal(data["names"], names_array):
                return data["boxes"], data["found"]
    boxes, found = detect()
    if boxes_path is not None:
        boxes_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = boxes_path.with_suffix(".tmp.npz")
        np.savez(tmp, boxes=boxes, found=found, names=names_array)
        tmp.replace(boxes_path)
    return boxes, found


def crops_from_boxes(paths: list[Path], boxes: np.ndarray, size: int) -> np.ndarray:
    """Crops with CACHE_MARGIN around each box (N x C x C x 3 uint8)."""
    crops = np.zeros((len(paths), *_cache_shape(size)), np.uint8)
    for i, (path, box) in enumerate(zip(tqdm(paths, desc=f"cropping at {size} px", unit="img", leave=False), boxes)):
        crops[i] = crop_face(load_image(path), tuple(box), size, CACHE_MARGIN)
    return crops


def detect_and_crop(paths: list[Path], size: int, boxes_path: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Largest detected face of each photo, cropped with CACHE_MARGIN; (crops, found mask).

    ``boxes_path``: an npz caching the detections, so another input size re-crops without
    running the detector again (detection is most of the cost).
    """
    boxes, found = _cached_boxes(boxes_path, photo_keys(paths), lambda: detect_boxes(paths))
    crops = np.zeros((len(paths), *_cache_shape(size)), np.uint8)
    chosen = np.flatnonzero(found)
    crops[chosen] = crops_from_boxes([paths[i] for i in chosen], boxes[chosen], size)
    return crops, found


def parse_utk_name(name: str) -> tuple[int, int, int] | None:
    """(age, gender 0 male / 1 female, race 0..4) from a UTKFace file name, or None."""
    match = UTK_NAME.match(name)
    if not match:
        return None
    age, gender, race = (int(g) for g in match.groups())
    return (age, gender, race) if 1 <= age <= 116 else None


def list_utkface(folder: Path) -> list[tuple[Path, tuple[int, int, int]]]:
    """Parsable UTKFace images, de-duplicated by content (conflicting duplicates dropped)."""
    by_hash: dict[str, list[tuple[Path, tuple[int, int, int]]]] = {}
    for path in sorted(folder.iterdir()):
        labels = parse_utk_name(path.name)
        if labels is None or not path.is_file():
            continue
        digest = hashlib.md5(path.read_bytes()).hexdigest()
        by_hash.setdefault(digest, []).append((path, labels))
    return [items[0] for items in by_hash.values() if len({lab for _, lab in items}) == 1]


def read_utkface(items: list[tuple[Path, tuple[int, int, int]]], size: int, boxes_path: Path | None = None) -> CropSet:
    from ..config import GENDERS

    crops, found = detect_and_crop([p for p, _ in items], size, boxes_path)
    labels = _empty_labels(len(items))
    labels["age"] = np.array([a for _, (a, _, _) in items], np.float32)
    # UTKFace: 0 male, 1 female -> GENDERS order.
    labels["gender"] = np.array(
        [GENDERS.index("female" if g == 1 else "male") for _, (_, g, _) in items], np.int64
    )
    labels["ethnicity"] = np.array([r for _, (_, _, r) in items], np.int64)
    return CropSet(crops=crops, **labels).subset(np.flatnonzero(found))


def list_celeba(folder: Path) -> list[tuple[Path, int]]:
    with open(folder / "identities.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [
        (folder / "images" / row["file"], int(row["identity"]))
        for row in rows
        if (folder / "images" / row["file"]).is_file()
    ]


def read_celeba(items: list[tuple[Path, int]], size: int, boxes_path: Path | None = None) -> CropSet:
    """Crops labelled with the raw CelebA identity number (remapped to classes by the caller)."""
    crops, found = detect_and_crop([p for p, _ in items], size, boxes_path)
    labels = _empty_labels(len(items))
    labels["identity"] = np.array([i for _, i in items], np.int64)
    return CropSet(crops=crops, **labels).subset(np.flatnonzero(found))


# --- CelebA in the wild: many people, gender and smiling -------------------------------------

# The aligned 89x109 photos hold faces of about 50x60 pixels: upsampled twice, MTCNN finds
# them with a short pyramid, and dlib's landmarks (train/teacher.py) work on the same image.
WILD_UPSAMPLE = 2
WILD_DETECTOR = DetectorSettings(threshold=0.7, min_face_size=40, max_faces=5)
WILD_VAL_FRACTION = 0.1


@dataclass(frozen=True)
class WildPhoto:
    path: Path
    identity: int
    male: int
    smiling: int


def list_celeba_wild(folder: Path) -> list[WildPhoto]:
    """The photos of ``celeba_wild/labels.csv`` that exist, with identity, male and smiling;
    none where the folder is missing (data folders from before it was added)."""
    if not (folder / "labels.csv").is_file():
        return []
    with open(folder / "labels.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [
        WildPhoto(folder / "images" / row["file"], int(row["identity"]), int(row["male"]), int(row["smiling"]))
        for row in rows
        if (folder / "images" / row["file"]).is_file()
    ]


def celeba_part(identity: int, val_fraction: float) -> str:
    """Train or val for a ``celeba_ids`` person (a larger share held out: verification pairs)."""
    return split_of(f"id{identity}", val_fraction * 1.6)


def wild_part(identity: int, celeba_ids_people: set[int], val_fraction: float) -> str:
    """Train or val, by person. People who are also in ``celeba_ids`` follow that set's split
    (so no validation person of either set is trained on); the others by their own hash."""
    if identity in celeba_ids_people:
        return celeba_part(identity, val_fraction)
    return split_of(f"wild{identity}", WILD_VAL_FRACTION)


def wild_upsampled(path: Path) -> np.ndarray:
    """A celeba_wild photo as RGB, WILD_UPSAMPLE times larger (bicubic): the image its box is in."""
    image = Image.fromarray(load_image(path))
    return np.asarray(image.resize((image.width * WILD_UPSAMPLE, image.height * WILD_UPSAMPLE), Image.BICUBIC))


def _median_box_where_missed(boxes: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Boxes with the median found box where MTCNN found none (the photos are aligned)."""
    return np.where(found[:, None], boxes, np.median(boxes[found], axis=0)) if found.any() else boxes


def read_celeba_wild(items: list[WildPhoto], size: int, boxes_path: Path | None = None) -> CropSet:
    """Crops (MTCNN's box on the upsampled photo) labelled with the raw CelebA identity,
    gender (CelebA's ``male``) and ``smiling``. The photos are aligned, so where MTCNN finds
    no face the median of the found boxes stands in: every photo is kept."""
    from ..config import GENDERS

    def detect():
        return _detect_arrays([wild_upsampled(item.path) for item in items], settings=WILD_DETECTOR)

    boxes, found = _cached_boxes(boxes_path, photo_keys([item.path for item in items]), detect)
    boxes = _median_box_where_missed(boxes, found)
    crops = np.empty((len(items), *_cache_shape(size)), np.uint8)
    for i, item in enumerate(tqdm(items, desc=f"celeba_wild at {size} px", unit="img", leave=False)):
        crops[i] = crop_face(wild_upsampled(item.path), tuple(boxes[i]), size, CACHE_MARGIN)
    labels = _empty_labels(len(items))
    labels["identity"] = np.array([item.identity for item in items], np.int64)
    labels["gender"] = np.array([GENDERS.index("male" if item.male else "female") for item in items], np.int64)
    return CropSet(crops=crops, **labels, smiling=np.array([item.smiling for item in items], np.int64))


def wild_boxes(cache_dir: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The boxes ``read_celeba_wild`` cropped (upsampled pixels; misses given the median box)
    and the photos' paths, in the CropSet's order."""
    with np.load(Path(cache_dir) / "boxes" / f"{name}.npz") as data:
        boxes, found, names = data["boxes"], data["found"], data["names"]
    boxes = _median_box_where_missed(boxes, found)
    return boxes, names


# --- the cache ---------------------------------------------------------------------------------


SPLITS = ("ferplus_train", "ferplus_val", "ferplus_tight_val", "utk_train", "utk_val", "celeba_train", "celeba_val",
          "celeba_wild_train", "celeba_wild_val")
# The splits whose faces carry identities to train on (remapped together to classes 0..K-1).
IDENTITY_TRAIN_SPLITS = ("celeba_train", "celeba_wild_train")


def identity_faces(splits: dict[str, CropSet]) -> CropSet:
    """The faces identity is trained on: IDENTITY_TRAIN_SPLITS one after another (their
    identities share one class numbering: build_splits)."""
    return CropSet.concat([splits[name] for name in IDENTITY_TRAIN_SPLITS if name in splits])


def crop_folder(size: int) -> str:
    """The crop cache's folder for a network input size ("crops64"); caches derived from those
    crops (teacher views, reference targets) carry the same name."""
    return f"crops{size}"


def crop_cache_complete(cache_dir: Path, size: int) -> bool:
    """Whether every split's crops are cached: then training reads no photos."""
    return all((Path(cache_dir) / crop_folder(size) / f"{name}.npz").is_file() for name in SPLITS)


def build_splits(data_dir: Path, cache_dir: Path, size: int, val_fraction: float = 0.1,
                 names: tuple[str, ...] = SPLITS) -> dict[str, CropSet]:
    """Train/val CropSets of the three sets, detecting faces only when not cached yet.

    Keys: ``names`` (default SPLITS), in that order (ferplus_tight_val holds the FER+ valid
    images framed as users' faces are: see read_ferplus_tight).
    CelebA's val splits hold people never seen in training (for verification pairs); the
    identities of IDENTITY_TRAIN_SPLITS are remapped together to classes 0..K-1.
    """
    boxes_dir = Path(cache_dir) / "boxes"
    cache_dir = Path(cache_dir) / crop_folder(size)
    cache_dir.mkdir(parents=True, exist_ok=True)

    def cached(name: str, build) -> CropSet:
        path = cache_dir / f"{name}.npz"
        if path.exists():
            return CropSet.load(path)
        crop_set = build()
        crop_set.save(path)
        return crop_set

    # The photo folders are listed (and UTKFace hashed) only when a crop cache is missing, so
    # training from complete caches needs no photos (e.g. on a machine the caches were copied to).
    utk = functools.cache(lambda: list_utkface(data_dir / "utkface" / "images"))
    celeba = functools.cache(lambda: list_celeba(data_dir / "celeba_ids"))
    wild = functools.cache(lambda: list_celeba_wild(data_dir / "celeba_wild"))

    def utk_part(part: str) -> CropSet:
        items = [item for item in utk() if split_of(item[0].name, val_fraction) == part]
        return read_utkface(items, size, boxes_dir / f"utk_{part}.npz")

    def celeba_split(part: str) -> CropSet:
        items = [item for item in celeba() if celeba_part(item[1], val_fraction) == part]
        return read_celeba(items, size, boxes_dir / f"celeba_{part}.npz")

    def wild_split(part: str) -> CropSet:
        people = {identity for _, identity in celeba()}
        items = [item for item in wild() if wild_part(item.identity, people, val_fraction) == part]
        return read_celeba_wild(items, size, boxes_dir / f"celeba_wild_{part}.npz")

    builders = {
        "ferplus_train": lambda: read_ferplus(data_dir / "ferplus" / "train.npz", size),
        "ferplus_val": lambda: read_ferplus(data_dir / "ferplus" / "valid.npz", size),
        "ferplus_tight_val": lambda: read_ferplus_tight(
            data_dir / "ferplus" / "valid.npz", size, boxes_dir / "ferplus_tight_val.npz"),
        "utk_train": lambda: utk_part("train"),
        "utk_val": lambda: utk_part("val"),
        "celeba_train": lambda: celeba_split("train"),
        "celeba_val": lambda: celeba_split("val"),
        "celeba_wild_train": lambda: wild_split("train"),
        "celeba_wild_val": lambda: wild_split("val"),
    }
    splits = {name: cached(name, builders[name]) for name in names}  # SPLITS: the one list of names
    trained = [name for name in IDENTITY_TRAIN_SPLITS if name in splits]
    people = sorted({int(i) for name in trained for i in splits[name].identity})
    classes = {identity: k for k, identity in enumerate(people)}
    for name in trained:
        remapped = np.array([classes[int(i)] for i in splits[name].identity], np.int64)
        splits[name] = CropSet(**{**splits[name].__dict__, "identity": remapped})
    return splits


TEACHER_TARGETS = ("raw", "centred")


# What the teacher looked at: each whole photo (its own landmarks at the photo's resolution), or
# the student's cached margin crops at one input size ("crops64"), enlarged (train/teacher.py).
PHOTO_VIEWS = "photos"
TEACHER_VIEWS = ("photos", "crops")


def views_of(choice: str, input_size: int) -> str:
    """The views a TEACHER_VIEWS choice means for a network of this input size: "photos", or
    "crops64" for "crops" at 64 px."""
    return PHOTO_VIEWS if choice == PHOTO_VIEWS else crop_folder(input_size)


def teacher_folder(views: str = PHOTO_VIEWS) -> str:
    """The cache folder of the descriptors of these views: ``teacher`` (photos) or ``teacher_crops64``."""
    return "teacher" if views == PHOTO_VIEWS else f"teacher_{views}"


def attach_teacher(splits: dict[str, CropSet], cache_dir: Path, target: str = "raw",
                   views: str = PHOTO_VIEWS) -> list[str]:
    """Put the cached teacher descriptors (``teacher/NAME.npz``, or ``teacher_crops64/NAME.npz``
    for ``views`` "crops64"; see train/teacher.py) into the splits that have them, in place;
    returns the names of those splits.

    ``target`` "centred": each descriptor minus the mean descriptor of the training splits,
    scaled to unit length. dlib's descriptors of different people share most of their
    direction (cosine 0.83 on average, same person 0.95, held-out CelebA people), so a cosine
    loss on them mostly teaches that shared part; centred, different people are near
    orthogonal (0.06) and the same person still close (0.69). Faces without a descriptor
    (zero rows) stay zero; with no training split's descriptors to centre on, no split gets
    any (returns []). Caches unpacked by train/portable.py hold unit directions, whose
    centred targets agree with those of dlib's own descriptors to cosine 0.99 on average."""
    if target not in TEACHER_TARGETS:
        raise ValueError(f"teacher target must be one of {', '.join(TEACHER_TARGETS)}, not {target!r}")
    cached = {}
    for name, crop_set in splits.items():
        path = Path(cache_dir) / teacher_folder(views) / f"{name}.npz"
        if path.exists():
            with np.load(path) as data:
                descriptors = data["teacher"]
            if len(descriptors) != len(crop_set):
                raise ValueError(f"{path}: {len(descriptors)} descriptors for {len(crop_set)} faces; delete it to rebuild")
            cached[name] = descriptors
    if target == "centred":
        described = [d[d.any(axis=1)] for name, d in cached.items() if name.endswith("_train")]
        if not sum(len(d) for d in described):
            # Nothing to centre on yet (e.g. a cache being built has only celeba_val so far):
            # raw descriptors would be the wrong targets, so no split gets any.
            return []
        mean = np.concatenate(described).mean(axis=0)
        cached = {name: centred_descriptors(d, mean) for name, d in cached.items()}
    for name, descriptors in cached.items():
        splits[name] = splits[name].with_teacher(descriptors)
    return list(cached)


def centred_descriptors(descriptors: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Rows minus ``mean``, scaled to unit length; all-zero rows (no descriptor) stay zero."""
    described = descriptors.any(axis=1)
    centred = np.zeros_like(descriptors, dtype=np.float32)
    centred[described] = normalize(descriptors[described] - mean)
    return centred
