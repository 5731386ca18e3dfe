"""Tracking and temporal smoothing: pure functions on synthetic sightings (no model, no video)."""

from __future__ import annotations

import numpy as np
import pytest

from face_mtl.track import (
    Sighting,
    TrackSettings,
    iou,
    keep_long_tracks,
    link_sightings,
    smooth_over_time,
)

FPS = 5.0
RNG = np.random.default_rng(0)
ALICE, BOB, CAROL = (v / np.linalg.norm(v) for v in RNG.normal(size=(3, 128)))


def _noisy(identity: np.ndarray, scale: float = 0.3) -> np.ndarray:
    # Same person, another frame: the embedding wobbles but stays close (cosine ~0.95).
    return identity + RNG.normal(scale=scale / np.sqrt(identity.size), size=identity.size)


IDS = {"alice": ALICE, "bob": BOB, "carol": CAROL}


def _frames(people: dict[str, list[tuple[float, float] | None]], size=60.0):
    """Sightings per frame from each person's (x, y) box corner per frame (None: not seen),
    and who each sighting's index belongs to."""
    count = max(len(path) for path in people.values())
    frames, owner = [], {}
    for f in range(count):
        here = []
        for name, path in people.items():
            corner = path[f] if f < len(path) else None
            if corner is None:
                continue
            x, y = corner
            here.append(Sighting(f, f / FPS, (x, y, x + size, y + size), _noisy(IDS[name]), len(owner)))
            owner[len(owner)] = name
        frames.append(here)
    return frames, owner


def test_iou_known_values():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching edges do not overlap


def test_one_person_moving_is_one_track():
    frames, _ = _frames({"alice": [(10 + 8 * f, 50) for f in range(20)]})
    tracks = link_sightings(frames)
    assert len(tracks) == 1 and len(tracks[0]) == 20


def test_two_people_crossing_keep_their_identities():
    # Alice walks right, Bob walks left, along the same line: their boxes overlap mid-way.
    alice = [(20 + 20 * f, 100) for f in range(20)]
    bob = [(400 - 20 * f, 105) for f in range(20)]
    frames, owner = _frames({"alice": alice, "bob": bob})
    tracks = link_sightings(frames)
    assert len(tracks) == 2
    assert [{owner[s.index] for s in t} for t in tracks] == [{"alice"}, {"bob"}]


def test_person_who_leaves_and_returns_gets_the_same_track():
    # Alice is away for 3 s (longer than max_gap) and comes back elsewhere; Bob stays.
    alice = [(20, 50)] * 10 + [None] * 15 + [(400, 200)] * 10
    bob = [(250, 60)] * 35
    frames, owner = _frames({"alice": alice, "bob": bob})
    tracks = link_sightings(frames)
    assert [{owner[s.index] for s in t} for t in tracks] == [{"alice"}, {"bob"}]
    assert [len(t) for t in tracks] == [20, 35]


def test_a_box_that_goes_on_continues_its_track_whatever_the_embedding():
    # The embedding drifts (crying, hands over the face): by the end it looks like a stranger
    # to the track's first frames, while the box barely moves. Motion is never vetoed.
    alice = [(50 + f, 50) for f in range(10)]
    frames, _ = _frames({"alice": alice, "carol": [None] * 10 + [(60 + f, 52) for f in range(10)]})
    tracks = link_sightings(frames)
    assert len(tracks) == 1 and len(tracks[0]) == 20


def test_stranger_in_the_same_place_after_a_gap_is_a_new_track():
    # Alice leaves; Carol sits down in the same place 2 s later (past max_gap): the boxes no
    # longer link, and the embedding does not re-identify a stranger.
    frames, owner = _frames({"alice": [(50, 50)] * 10, "carol": [None] * 20 + [(50, 50)] * 10})
    tracks = link_sightings(frames)
    assert [{owner[s.index] for s in t} for t in tracks] == [{"alice"}, {"carol"}]


def test_links_are_assigned_together_not_greedily():
    # Track A's best link is sighting 1, but sighting 1 is the only possible link of track B;
    # greedy best-first gives A sighting 1 and leaves B to start over. The assignment of
    # largest total gives A sighting 2 and B sighting 1.
    settings = TrackSettings(embedding_weight=0.0)
    same = np.ones(4)
    first = [Sighting(0, 0.0, (0, 0, 100, 100), same, 0), Sighting(0, 0.0, (70, 0, 170, 100), same, 1)]
    # A (0..100) overlaps s1 (10..110) by 0.82 and s2 (-20..80) by 0.67; B (70..170) overlaps
    # s1 by 0.25 and s2 by 0.05, below min_iou.
    second = [Sighting(1, 0.2, (10, 0, 110, 100), same, 2), Sighting(1, 0.2, (-20, 0, 80, 100), same, 3)]
    tracks = link_sightings([first, second], settings)
    assert [[s.index for s in t] for t in tracks] == [[0, 3], [1, 2]]


def test_short_tracks_are_dropped_whatever_the_sampling_rate():
    settings = TrackSettings(min_duration=0.5, min_sightings=2)
    tracks = [[object()] * n for n in (1, 2, 3, 5)]
    assert [len(t) for t in keep_long_tracks(tracks, 5.0, settings)] == [3, 5]  # needs 2.5 -> 3
    assert [len(t) for t in keep_long_tracks(tracks, 2.0, settings)] == [2, 3, 5]  # needs 1 -> 2
    assert [len(t) for t in keep_long_tracks(tracks, 20.0, settings)] == []  # needs 10


def test_settings_are_validated():
    with pytest.raises(ValueError):
        TrackSettings(min_iou=1.5)
    with pytest.raises(ValueError):
        TrackSettings(embedding_weight=-1)
    with pytest.raises(ValueError):
        TrackSettings(reid_similarity=0.0)
    with pytest.raises(ValueError):
        TrackSettings(min_sightings=0)


def test_smoothing_keeps_constants_and_sums():
    times = np.arange(10) / FPS
    values = np.tile([0.2, 0.3, 0.5], (10, 1))
    assert np.allclose(smooth_over_time(times, values, 1.0), values)
    noisy = RNG.dirichlet(np.ones(4), size=30)
    smoothed = smooth_over_time(np.arange(30) / FPS, noisy, 1.0)
    assert np.allclose(smoothed.sum(axis=1), 1.0)
    assert smoothed.std(axis=0).sum() < noisy.std(axis=0).sum()


def test_smoothing_is_centred_so_nothing_shifts_in_time():
    times = np.arange(41) / FPS  # 0..8 s
    step = (times >= 4.0).astype(float)[:, None]  # an expression that starts at 4 s
    smoothed = smooth_over_time(times, np.hstack([1 - step, step]), 1.0)[:, 1]
    assert smoothed[times < 3.4].max() == 0 and smoothed[times > 4.6].min() == 1
    assert smoothed[20] == pytest.approx(3 / 5)  # 4.0 s: window 3.6..4.4 holds 3 of 5 "on"
    # Symmetric about the step (between the samples at 3.8 and 4.0 s): no lead, no lag.
    for k in range(4):
        assert smoothed[19 - k] + smoothed[20 + k] == pytest.approx(1.0)
    impulse = np.zeros((41, 1))
    impulse[20] = 1
    spread = smooth_over_time(times, impulse, 1.0)[:, 0]
    assert np.allclose(spread, spread[::-1])
    assert (spread * times).sum() / spread.sum() == pytest.approx(4.0)  # centre of mass stays


def test_smoothing_does_not_mix_across_gaps_or_with_window_zero():
    times = np.array([0.0, 0.2, 0.4, 5.0, 5.2])
    values = np.array([[1.0, 0.0]] * 3 + [[0.0, 1.0]] * 2)
    smoothed = smooth_over_time(times, values, 1.0)
    assert np.allclose(smoothed, values)
    assert np.array_equal(smooth_over_time(times, values, 0.0), values)
    with pytest.raises(ValueError):
        smooth_over_time(times[:3], values, 1.0)
