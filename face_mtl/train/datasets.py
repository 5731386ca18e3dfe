"""Readers for the training sets and the detection cache.

Every photo goes through the same detector and tight box as inference; the crop is cached
with a margin (``CACHE_MARGIN`` of the box on each side) so augmentation can jitter scale and
shift around that box without re-running detection. FER+ images are already 48x48 face crops
(the detector finds almost nothing at that size), so each whole image is taken as the box.
"""

from __future__ import annotations

import csv
import hashlib
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..config import EMOTIONS
from ..crop import crop_face
from ..detect import DetectorSettings, MTCNNDetector
from ..images import load_image

CACHE_MARGIN = 0.1
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

    def __len__(self) -> int:
        return len(self.crops)

    def subset(self, index: np.ndarray) -> "CropSet":
        return CropSet(*(getattr(self, f)[index] for f in self.__dataclass_fields__))

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **{f: getattr(self, f) for f in self.__dataclass_fields__})
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "CropSet":
        with np.load(path) as data:
            return cls(**{f: data[f] for f in cls.__dataclass_fields__})


def _empty_labels(n: int) -> dict[str, np.ndarray]:
    return {
        "emotion": np.zeros((n, len(EMOTIONS)), np.float32),
        "age": np.full(n, np.nan, np.float32),
        "gender": np.full(n, -1, np.int64),
        "ethnicity": np.full(n, -1, np.int64),
        "identity": np.full(n, -1, np.int64),
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


def read_ferplus(path: Path, size: int) -> CropSet:
    """A FER+ npz; drops images whose votes are mostly unknown / not_face."""
    with np.load(path) as data:
        pixels, votes = data["pixels"], data["votes"]
    keep = ferplus_trainable(votes)
    pixels, emotion_votes = pixels[keep], ferplus_votes_to_emotions(votes[keep])
    crops = np.empty((len(pixels), *_cache_shape(size)), np.uint8)
    for i, gray in enumerate(tqdm(pixels, desc=f"FER+ {path.name}", unit="img", leave=False)):
        rgb = np.repeat(gray[:, :, None], 3, axis=2)
        crops[i] = crop_face(rgb, (0, 0, gray.shape[1], gray.shape[0]), size, CACHE_MARGIN)
    labels = _empty_labels(len(crops))
    labels["emotion"] = emotion_votes / emotion_votes.sum(axis=1, keepdims=True)
    return CropSet(crops=crops, **labels)


# --- photos through the detector --------------------------------------------------------------


def _cache_shape(size: int) -> tuple[int, int, int]:
    side = round(size * (1 + 2 * CACHE_MARGIN))
    return (side, side, 3)


def detect_and_crop(paths: list[Path], size: int, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Largest detected face of each photo, cropped with CACHE_MARGIN; (crops, found mask)."""
    detector = MTCNNDetector(PREPROCESS_DETECTOR)
    crops = np.zeros((len(paths), *_cache_shape(size)), np.uint8)
    found = np.zeros(len(paths), bool)
    for start in tqdm(range(0, len(paths), batch), desc="detecting faces", unit="batch"):
        images = [load_image(p) for p in paths[start : start + batch]]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault(image.shape, []).append(i)
        for members in groups.values():
            results = detector.detect_batch([images[i] for i in members])
            for i, detections in zip(members, results):
                if detections:
                    crops[start + i] = crop_face(images[i], detections[0].box, size, CACHE_MARGIN)
                    found[start + i] = True
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


def read_utkface(items: list[tuple[Path, tuple[int, int, int]]], size: int) -> CropSet:
    from ..config import GENDERS

    crops, found = detect_and_crop([p for p, _ in items], size)
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


def read_celeba(items: list[tuple[Path, int]], size: int) -> CropSet:
    """Crops labelled with the raw CelebA identity number (remapped to classes by the caller)."""
    crops, found = detect_and_crop([p for p, _ in items], size)
    labels = _empty_labels(len(items))
    labels["identity"] = np.array([i for _, i in items], np.int64)
    return CropSet(crops=crops, **labels).subset(np.flatnonzero(found))


# --- the cache ---------------------------------------------------------------------------------


def build_splits(data_dir: Path, cache_dir: Path, size: int, val_fraction: float = 0.1) -> dict[str, CropSet]:
    """Train/val CropSets of the three sets, detecting faces only when not cached yet.

    Keys: ferplus_train, ferplus_val, utk_train, utk_val, celeba_train, celeba_val.
    CelebA's val split holds people never seen in training (for verification pairs);
    celeba_train identities are remapped to 0..K-1.
    """
    cache_dir = Path(cache_dir) / f"crops{size}"
    cache_dir.mkdir(parents=True, exist_ok=True)

    def cached(name: str, build) -> CropSet:
        path = cache_dir / f"{name}.npz"
        if path.exists():
            return CropSet.load(path)
        crop_set = build()
        crop_set.save(path)
        return crop_set

    splits = {
        "ferplus_train": cached("ferplus_train", lambda: read_ferplus(data_dir / "ferplus" / "train.npz", size)),
        "ferplus_val": cached("ferplus_val", lambda: read_ferplus(data_dir / "ferplus" / "valid.npz", size)),
    }
    utk = list_utkface(data_dir / "utkface" / "images")
    for part in ("train", "val"):
        chosen = [item for item in utk if split_of(item[0].name, val_fraction) == part]
        splits[f"utk_{part}"] = cached(f"utk_{part}", lambda chosen=chosen: read_utkface(chosen, size))
    celeba = list_celeba(data_dir / "celeba_ids")
    for part in ("train", "val"):
        chosen = [item for item in celeba if split_of(f"id{item[1]}", val_fraction * 1.6) == part]
        splits[f"celeba_{part}"] = cached(f"celeba_{part}", lambda chosen=chosen: read_celeba(chosen, size))
    train_ids = splits["celeba_train"].identity
    classes = {identity: k for k, identity in enumerate(sorted(set(train_ids.tolist())))}
    remapped = np.array([classes[i] for i in train_ids], np.int64)
    splits["celeba_train"] = CropSet(**{**splits["celeba_train"].__dict__, "identity": remapped})
    return splits
