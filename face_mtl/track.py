"""Tracking faces across sampled video frames and smoothing per-frame outputs over time.

Pure functions over plain values: no decoding, no model. A track links the sightings of one
person. Motion decides first: a sighting whose box overlaps where a recently seen track's box
was heading (a constant-velocity guess) continues that track, whatever the identity embedding
says, because a weak embedding drifts with expression, blur and hands over the face while the
box plainly goes on. The embedding has two jobs only: among several motion links it helps pick
who is who (two people crossing), and it re-identifies a person who comes back after a gap or
jumps too far for the boxes to meet. Each frame's links are chosen together (the assignment of
largest total score, ``scipy.optimize.linear_sum_assignment``), not one at a time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from .types import Box

# A track's appearance is the mean of its last few embeddings: steadier than one frame across
# blur, yet it follows the slow drift of a face's embedding with expression and pose.
APPEARANCE_SIGHTINGS = 8
# Every motion link scores above this; re-identifications score their similarity (<= 1), so a
# box that goes on always outranks a re-identification.
MOTION_BASE = 2.0


@dataclass(frozen=True)
class TrackSettings:
    """How sightings are linked and which tracks are kept.

    ``max_gap``: seconds after which a track's box no longer predicts where the face is; past
    it only the embedding can link (re-identification). ``min_iou``: overlap of the predicted
    and the new box that continues a track (a motion link, never refused for the embedding's
    sake). ``embedding_weight``: how much embedding similarity counts, beside box overlap, when
    motion links compete (people crossing). ``reid_similarity``: cosine similarity of
    embeddings that links without motion. ``min_duration``: seconds of sightings (count /
    sampling rate) a track needs to be kept; ``min_sightings`` likewise.
    """

    max_gap: float = 1.0
    min_iou: float = 0.2
    embedding_weight: float = 0.5
    reid_similarity: float = 0.7
    min_duration: float = 0.5
    min_sightings: int = 2

    def __post_init__(self) -> None:
        if self.max_gap < 0 or self.min_duration < 0 or self.min_sightings < 1:
            raise ValueError("max_gap and min_duration must be >= 0 and min_sightings >= 1")
        if not 0.0 < self.min_iou <= 1.0:
            raise ValueError(f"min_iou must be in (0, 1], got {self.min_iou}")
        if self.embedding_weight < 0:
            raise ValueError(f"embedding_weight must be >= 0, got {self.embedding_weight}")
        if not 0.0 < self.reid_similarity <= 1.0:
            raise ValueError(f"reid_similarity must be in (0, 1], got {self.reid_similarity}")


@dataclass(frozen=True, eq=False)
class Sighting:
    """One face in one sampled frame: ``t`` in seconds, ``box`` (x1, y1, x2, y2) in pixels,
    ``embedding`` a 1-D float vector (any norm), ``index`` the caller's row for this face."""

    frame: int
    t: float
    box: Box
    embedding: np.ndarray
    index: int


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes, in 0..1."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _unit(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64)
    norm = np.linalg.norm(vector)
    return vector / norm if norm > 0 else vector


class _Track:
    """Mutable state while linking; only ``link_sightings`` sees it."""

    def __init__(self, sighting: Sighting) -> None:
        self.sightings = [sighting]
        self.velocity = (0.0, 0.0)  # box centre, pixels per second

    @property
    def last(self) -> Sighting:
        return self.sightings[-1]

    def appearance(self) -> np.ndarray:
        recent = self.sightings[-APPEARANCE_SIGHTINGS:]
        return _unit(np.sum([_unit(s.embedding) for s in recent], axis=0))

    def predicted_box(self, t: float) -> Box:
        dt = t - self.last.t
        dx, dy = self.velocity[0] * dt, self.velocity[1] * dt
        x1, y1, x2, y2 = self.last.box
        return (x1 + dx, y1 + dy, x2 + dx, y2 + dy)

    def add(self, sighting: Sighting, max_gap: float) -> None:
        previous = self.last
        dt = sighting.t - previous.t
        if 0 < dt <= max_gap:
            cx = (sighting.box[0] + sighting.box[2] - previous.box[0] - previous.box[2]) / 2 / dt
            cy = (sighting.box[1] + sighting.box[3] - previous.box[1] - previous.box[3]) / 2 / dt
            # Half new, half old: detector jitter should not throw the guess far off.
            self.velocity = (0.5 * (self.velocity[0] + cx), 0.5 * (self.velocity[1] + cy))
        else:
            self.velocity = (0.0, 0.0)
        self.sightings.append(sighting)


def link_score(
    track_box: Box | None, appearance: np.ndarray, sighting: Sighting, settings: TrackSettings
) -> float:
    """How well a sighting continues a track: 0 for no link, a re-identification scores its
    embedding similarity (reid_similarity..1), a motion link more than MOTION_BASE.

    ``track_box``: where the track's box is predicted at the sighting's time, or None when
    the track was last seen more than ``max_gap`` ago. ``appearance``: the track's unit
    embedding.
    """
    similarity = float(appearance @ _unit(sighting.embedding))
    if track_box is not None:
        overlap = iou(track_box, sighting.box)
        if overlap >= settings.min_iou:
            # Similarity only ranks competing motion links; it cannot refuse one.
            return MOTION_BASE + overlap + settings.embedding_weight * (1.0 + similarity)
    return similarity if similarity >= settings.reid_similarity else 0.0


def link_sightings(
    frames: Sequence[Sequence[Sighting]], settings: TrackSettings | None = None
) -> list[list[Sighting]]:
    """Group the sightings of consecutive sampled frames into tracks, one per person.

    ``frames``: per sampled frame (in time order), its sightings. In each frame every pair of
    (track, sighting) is scored by ``link_score`` and the links of largest total score are
    made at once, at most one per track and per sighting; a sighting without a link starts a
    new track. Returns every track (short ones included) as a list of sightings in time
    order, tracks ordered by first appearance.
    """
    settings = settings or TrackSettings()
    tracks: list[_Track] = []
    for sightings in frames:
        if not sightings:
            continue
        t = sightings[0].t
        scores = np.zeros((len(tracks), len(sightings)))
        for ti, track in enumerate(tracks):
            box = track.predicted_box(t) if t - track.last.t <= settings.max_gap else None
            appearance = track.appearance()
            for si, sighting in enumerate(sightings):
                scores[ti, si] = link_score(box, appearance, sighting, settings)
        linked: set[int] = set()
        if tracks:
            # Pairs scored 0 are not links: assigning them costs nothing and they are dropped.
            for ti, si in zip(*linear_sum_assignment(scores, maximize=True)):
                if scores[ti, si] > 0:
                    tracks[ti].add(sightings[si], settings.max_gap)
                    linked.add(int(si))
        tracks.extend(_Track(s) for si, s in enumerate(sightings) if si not in linked)
    return [track.sightings for track in tracks]


def keep_long_tracks(
    tracks: Sequence[Sequence[Sighting]], sample_fps: float, settings: TrackSettings | None = None
) -> list[Sequence[Sighting]]:
    """Tracks with at least ``min_sightings`` sightings covering ``min_duration`` seconds.

    Each sighting stands for 1 / ``sample_fps`` seconds of the clip, so the rule does not
    depend on the sampling rate.
    """
    settings = settings or TrackSettings()
    needed = max(settings.min_sightings, math.ceil(settings.min_duration * sample_fps - 1e-9))
    return [track for track in tracks if len(track) >= needed]


def smooth_over_time(times: np.ndarray, values: np.ndarray, window: float) -> np.ndarray:
    """Centred moving average over time: each row becomes the mean of the rows within
    ``window`` / 2 seconds either side of it (fewer at the ends and across gaps).

    ``times``: (N,) seconds, non-decreasing. ``values``: (N, K). Returns (N, K) float64. The
    window is symmetric, so smoothing shifts nothing in time; a window of 0 returns the input.
    Averaged probability rows still sum to 1.
    """
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or times.shape != (values.shape[0],):
        raise ValueError(f"expected times (N,) and values (N, K), got {times.shape} and {values.shape}")
    if window <= 0 or len(times) < 2:
        return values.copy()
    half = window / 2 + 1e-9  # include samples exactly half a window away
    lo = np.searchsorted(times, times - half, side="left")
    hi = np.searchsorted(times, times + half, side="right")
    cumulative = np.vstack([np.zeros((1, values.shape[1])), np.cumsum(values, axis=0)])
    return (cumulative[hi] - cumulative[lo]) / (hi - lo)[:, None]
