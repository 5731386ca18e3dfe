"""Tracking faces across sampled video frames and smoothing per-frame outputs over time.

Pure functions over plain values: no decoding, no model. A track links the sightings of one
person; links come from box overlap (with a constant-velocity guess of where the box went)
together with the cosine similarity of identity embeddings, so that two people who cross
keep their identities and a person who leaves and comes back gets their old track back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .types import Box


@dataclass(frozen=True)
class TrackSettings:
    """How sightings are linked and which tracks are kept.

    ``max_gap``: seconds after which a track's box no longer predicts where the face is; past
    it only the embedding can link (re-identification). ``min_iou``: overlap of the predicted
    and the new box for a motion link. ``min_similarity``: embedding cosine similarity a
    motion link still needs (vetoes swaps between overlapping people). ``reid_similarity``:
    similarity that links on its own, whatever the boxes. ``min_duration``: seconds of
    sightings (count / sampling rate) a track needs to be kept; ``min_sightings`` likewise.
    """

    max_gap: float = 1.0
    min_iou: float = 0.2
    min_similarity: float = 0.3
    reid_similarity: float = 0.7
    min_duration: float = 0.5
    min_sightings: int = 2

    def __post_init__(self) -> None:
        if self.max_gap < 0 or self.min_duration < 0 or self.min_sightings < 1:
            raise ValueError("max_gap and min_duration must be >= 0 and min_sightings >= 1")
        if not 0.0 <= self.min_iou <= 1.0:
            raise ValueError(f"min_iou must be in 0..1, got {self.min_iou}")
        if not -1.0 <= self.min_similarity <= self.reid_similarity <= 1.0:
            raise ValueError("need -1 <= min_similarity <= reid_similarity <= 1")


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
        self.embedding_sum = _unit(sighting.embedding)
        self.velocity = (0.0, 0.0)  # box centre, pixels per second

    @property
    def last(self) -> Sighting:
        return self.sightings[-1]

    def prototype(self) -> np.ndarray:
        # The mean of all its embeddings: steadier than the last one across poses and blur.
        return _unit(self.embedding_sum)

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
        self.embedding_sum = self.embedding_sum + _unit(sighting.embedding)


def _link_score(track: _Track, sighting: Sighting, settings: TrackSettings) -> float | None:
    """Higher is a better link; None when the two must not be linked."""
    similarity = float(track.prototype() @ _unit(sighting.embedding))
    gap = sighting.t - track.last.t
    if gap <= settings.max_gap:
        overlap = iou(track.predicted_box(sighting.t), sighting.box)
        if overlap >= settings.min_iou and similarity >= settings.min_similarity:
            # A motion link outranks a pure re-identification of the same similarity.
            return 1.0 + overlap + similarity
    if similarity >= settings.reid_similarity:
        return similarity
    return None


def link_sightings(
    frames: Sequence[Sequence[Sighting]], settings: TrackSettings | None = None
) -> list[list[Sighting]]:
    """Group the sightings of consecutive sampled frames into tracks, one per person.

    ``frames``: per sampled frame (in time order), its sightings. Each frame assigns its
    sightings greedily, best link first, at most one per track; a sighting without an
    acceptable link starts a new track. Returns every track (short ones included) as a list
    of sightings in time order, tracks ordered by first appearance.
    """
    settings = settings or TrackSettings()
    tracks: list[_Track] = []
    for sightings in frames:
        candidates = []
        for ti, track in enumerate(tracks):
            for si, sighting in enumerate(sightings):
                score = _link_score(track, sighting, settings)
                if score is not None:
                    candidates.append((score, ti, si))
        candidates.sort(key=lambda c: c[0], reverse=True)
        used_tracks: set[int] = set()
        used_sightings: set[int] = set()
        for _, ti, si in candidates:
            if ti in used_tracks or si in used_sightings:
                continue
            tracks[ti].add(sightings[si], settings.max_gap)
            used_tracks.add(ti)
            used_sightings.add(si)
        for si, sighting in enumerate(sightings):
            if si not in used_sightings:
                tracks.append(_Track(sighting))
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
