"""Result objects: one frozen ``Face`` per detected face or per crop; ``Comparison`` and
``Match`` for identity questions about faces; a clip's ``VideoResult`` with one
``TrackResult`` per person."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
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


@dataclass(frozen=True, eq=False)
class TrackResult:
    """One person over time.

    ``times``: (N,) seconds of the sampled frames where they were seen. ``boxes``: (N, 4)
    (x1, y1, x2, y2) in pixels of the clip. ``emotions``: (N, K) probabilities smoothed over
    time (rows sum to 1), ``raw_emotions`` the network's per-frame probabilities, columns in
    the order of ``VideoResult.labels``. ``summary``: see ``summarize_track``.
    """

    id: int
    times: np.ndarray
    boxes: np.ndarray
    emotions: np.ndarray
    raw_emotions: np.ndarray
    summary: dict[str, Any]

    def frames(self, labels: Sequence[str]) -> list[dict[str, Any]]:
        return [
            {
                "t": round(float(t), 3),
                "box": [round(float(v), 1) for v in box],
                "emotions": {label: round(float(p), 4) for label, p in zip(labels, row)},
            }
            for t, box, row in zip(self.times, self.boxes, self.emotions)
        ]


@dataclass(frozen=True, eq=False)
class VideoResult:
    """Everything found in a clip: one ``TrackResult`` per person, in order of appearance.

    ``fps`` is the sampling rate actually used (frames analysed per second of clip),
    ``frames`` the number of sampled frames, ``faces`` the number of faces analysed (tracks
    too short to keep included), ``timings`` seconds spent per stage.
    """

    path: str
    duration: float
    fps: float
    width: int
    height: int
    labels: tuple[str, ...]
    frames: int
    faces: int
    tracks: tuple[TrackResult, ...]
    summary: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable: duration (s), fps (sampling rate), tracks (timelines and
        per-person summaries) and the clip's summary."""
        return {
            "duration": round(self.duration, 3),
            "fps": round(self.fps, 3),
            "tracks": [
                {"id": track.id, "frames": track.frames(self.labels), "summary": track.summary}
                for track in self.tracks
            ],
            "summary": self.summary,
        }

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per person per sampled frame (for CSV): smoothed probabilities."""
        rows = []
        for track in self.tracks:
            for t, box, row in zip(track.times, track.boxes, track.emotions):
                entry: dict[str, Any] = {"person": track.id, "t": round(float(t), 3)}
                entry.update({k: round(float(v), 1) for k, v in zip(("x1", "y1", "x2", "y2"), box)})
                entry["emotion"] = self.labels[int(np.argmax(row))]
                entry.update({label: round(float(p), 4) for label, p in zip(self.labels, row)})
                rows.append(entry)
        return rows

    def describe(self) -> str:
        """Readable text: the clip, then one paragraph per person."""
        head = (
            f"{Path(self.path).name}: {self.duration:.1f} s, {self.width}x{self.height}, "
            f"sampled at {self.fps:g} fps ({self.frames} frames)"
        )
        if not self.tracks:
            return f"{head}: {self.summary['message']}"
        people = len(self.tracks)
        lines = [f"{head}: {people} {'person' if people == 1 else 'people'}"]
        for track in self.tracks:
            s = track.summary
            shares = ", ".join(
                f"{label} {share:.0%}" for label, share in s["emotion_share"].items() if share >= 0.005
            )
            lines += [
                "",
                f"Person {track.id}: seen {s['first_seen']:.1f}-{s['last_seen']:.1f} s ({s['frames']} frames)",
                f"  mostly {s['dominant_emotion']} ({s['emotion_share'][s['dominant_emotion']]:.0%} of the time); "
                f"clip-level emotion {s['video_emotion']} "
                f"(mean {s['emotion_mean'][s['video_emotion']]:.2f} ± {s['emotion_std'][s['video_emotion']]:.2f})",
                f"  time share: {shares}",
                f"  age {s['age']:.0f}, {s['gender']} ({s['genders'][s['gender']]:.2f}), "
                f"{s['ethnicity']} ({s['ethnicities'][s['ethnicity']]:.2f})",
            ]
        return "\n".join(lines)
