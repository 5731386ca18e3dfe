"""Group every face of a folder of photos into people (``face-mtl people``).

Scanning runs the analyzer over each image (unreadable files are recorded and skipped); the
grouping itself is ``identity.cluster`` at the weights' grouping threshold calibrated for
folders of that many faces (``identity.grouping_threshold``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import identity
from .crop import crop_face
from .images import ImageLoadError, load_image
from .types import Box

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
THUMBNAIL_SIZE = 112  # pixels per side of a face on a contact sheet


def list_images(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursive, IMAGE_SUFFIXES in any case), sorted by path.
    Hidden files and folders (names starting with ".") are skipped."""
    root = Path(folder)
    return sorted(
        path
        for path in root.rglob("*")
        if path.suffix.lower() in IMAGE_SUFFIXES
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
    )


@dataclass(frozen=True)
class FaceRef:
    """One face of one image: the image's path, its 0-based index among the image's faces
    (largest first) and its box (x1, y1, x2, y2) in the image's pixels."""

    image: str
    face: int
    box: Box

    def to_dict(self) -> dict[str, Any]:
        return {"image": self.image, "box": [round(v, 2) for v in self.box], "face": self.face}


@dataclass(frozen=True)
class Person:
    """One group of faces judged to be the same person; ``person`` numbers groups from 1,
    biggest first."""

    person: int
    faces: tuple[FaceRef, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"person": self.person, "faces": [face.to_dict() for face in self.faces]}


@dataclass(frozen=True, eq=False)
class FaceScan:
    """Every face found in a set of images.

    ``refs`` N FaceRefs; ``embeddings`` N x D float32 unit vectors; ``thumbnails`` N
    THUMBNAIL_SIZE-square uint8 RGB crops (empty unless asked for); ``skipped`` (path, reason)
    of files that could not be read.
    """

    refs: tuple[FaceRef, ...]
    embeddings: np.ndarray
    thumbnails: tuple[np.ndarray, ...] = ()
    skipped: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def scan_faces(
    analyzer,
    paths: Sequence[str | Path],
    thumbnails: bool = False,
    progress: Callable[[Sequence], Sequence] = lambda items: items,
) -> FaceScan:
    """Analyse each image and collect its faces; files that cannot be read as images go to
    ``skipped`` with the reason instead of stopping the scan. ``progress`` wraps the list of
    paths (e.g. ``tqdm``)."""
    refs, embeddings, crops, skipped = [], [], [], []
    for path in progress(list(paths)):
        try:
            rgb = load_image(path)
        except ImageLoadError as error:
            skipped.append((str(path), str(error)))
            continue
        for index, face in enumerate(analyzer.analyze(rgb)):
            refs.append(FaceRef(image=str(path), face=index, box=face.box))
            embeddings.append(face.embedding)
            if thumbnails:
                crops.append(crop_face(rgb, face.box, THUMBNAIL_SIZE))
    width = analyzer.config.embedding_size
    matrix = np.stack(embeddings).astype(np.float32) if embeddings else np.zeros((0, width), np.float32)
    return FaceScan(refs=tuple(refs), embeddings=matrix, thumbnails=tuple(crops), skipped=tuple(skipped))


def group_people(scan: FaceScan, threshold: float) -> list[Person]:
    """The scanned faces grouped into people (``identity.cluster`` at ``threshold``), biggest
    group first; within a person, faces keep the scan's order."""
    labels = identity.cluster(scan.embeddings, threshold)
    count = int(labels.max()) + 1 if len(labels) else 0
    return [
        Person(person=k + 1, faces=tuple(scan.refs[i] for i in np.flatnonzero(labels == k)))
        for k in range(count)
    ]


def person_thumbnails(scan: FaceScan, person: Person) -> list[np.ndarray]:
    """The thumbnails of ``person``'s faces, in order (``scan`` made with thumbnails=True)."""
    index = {ref: i for i, ref in enumerate(scan.refs)}
    return [scan.thumbnails[index[ref]] for ref in person.faces]
