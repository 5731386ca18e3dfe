"""Result objects: one frozen ``Face`` per detected face or per crop."""

from __future__ import annotations

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
