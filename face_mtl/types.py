"""Result objects: one frozen ``Face`` per detected face or per crop; ``Comparison`` and
``Match`` for identity questions about faces."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Box = tuple[float, float, float, float]


@dataclass(frozen=True, eq=False)
class Face:
    """Everything the analyzer knows about one face.

    ``box`` is (x1, y1, x2, y2) in pixels of the analysed image, ``landmarks`` five (x, y)
    points (eyes, nose, mouth corners) and ``score`` the detector's confidence; all three are
    None for faces given as crops. Probabilities are dicts label -> probability summing to 1.
    ``embedding`` is a float32 vector of unit L2 norm (identity).
    """

    box: Box | None
    score: float | None
    landmarks: tuple[tuple[float, float], ...] | None
    emotion: str
    emotions: dict[str, float]
    age: float
    gender: str
    genders: dict[str, float]
    ethnicity: str
    ethnicities: dict[str, float]
    embedding: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict with every field (embedding as a list of floats)."""
        return {
            "box": None if self.box is None else [round(v, 2) for v in self.box],
            "score": None if self.score is None else round(self.score, 4),
            "landmarks": None
            if self.landmarks is None
            else [[round(x, 2), round(y, 2)] for x, y in self.landmarks],
            "emotion": self.emotion,
            "emotions": {k: round(v, 4) for k, v in self.emotions.items()},
            "age": round(self.age, 1),
            "gender": self.gender,
            "genders": {k: round(v, 4) for k, v in self.genders.items()},
            "ethnicity": self.ethnicity,
            "ethnicities": {k: round(v, 4) for k, v in self.ethnicities.items()},
            "embedding": [round(float(v), 6) for v in self.embedding],
        }


@dataclass(frozen=True)
class Detection:
    """One face found by a detector, in pixels of the image it was given."""

    box: Box
    score: float
    landmarks: tuple[tuple[float, float], ...]

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)


class NoFaceError(ValueError):
    """An image in which an identity question needs a face and none was found. ``image`` names
    it (a path, or a label such as "image A" for arrays)."""

    def __init__(self, image: str) -> None:
        super().__init__(f"{image}: no face found")
        self.image = image


def _box_list(box: Box | None) -> list[float] | None:
    return None if box is None else [round(v, 2) for v in box]


@dataclass(frozen=True, eq=False)
class Comparison:
    """Two images compared face by face.

    ``similarity``: cosine similarity (-1..1) of the largest face of A and the largest face of
    B; ``same_person``: whether it reaches ``threshold``; ``threshold_source``: "calibrated"
    (from the weights' config.json) or "default" (uncalibrated weights). ``matrix``: len(faces_a)
    x len(faces_b) float32 cosine similarities, faces in the analyzer's largest-first order.
    """

    similarity: float
    same_person: bool
    threshold: float
    threshold_source: str
    matrix: np.ndarray
    faces_a: Sequence[Face]
    faces_b: Sequence[Face]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable: every field, the matrix as nested lists, faces as Face.to_dict()."""
        return {
            "similarity": round(float(self.similarity), 6),
            "same_person": bool(self.same_person),
            "threshold": round(float(self.threshold), 6),
            "threshold_source": self.threshold_source,
            "matrix": [[round(float(v), 6) for v in row] for row in np.asarray(self.matrix)],
            "faces_a": [face.to_dict() for face in self.faces_a],
            "faces_b": [face.to_dict() for face in self.faces_b],
        }


@dataclass(frozen=True)
class Match:
    """One face of a searched collection, scored against a query face.

    ``image``: position of its image in the list searched; ``path``: that image's path when it
    was given as one (else None); ``face``: 0-based index among that image's faces (largest
    first); ``box``: (x1, y1, x2, y2) in its pixels; ``similarity``: cosine similarity to the
    query (-1..1); ``same_person``: similarity >= ``threshold``.
    """

    image: int
    path: str | None
    face: int
    box: Box
    similarity: float
    same_person: bool
    threshold: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "path": self.path,
            "face": self.face,
            "box": _box_list(self.box),
            "similarity": round(float(self.similarity), 6),
            "same_person": bool(self.same_person),
            "threshold": round(float(self.threshold), 6),
        }
