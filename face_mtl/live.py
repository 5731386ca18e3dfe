"""Live camera analysis: one frame at a time, people followed and their outputs smoothed.

A live session is a frozen ``LiveState`` that each frame turns into the next one
(``advance``); nothing is kept anywhere else, so a server holds one per viewer (Gradio's
``gr.State``) and forgets it when the session ends. Faces are linked to people with
``face_mtl.track``'s scores (box motion first, the identity embedding to tell people apart or
find them again), and each person's probabilities are an exponential moving average over time,
so labels do not flicker from one frame to the next. ``analyze_live_frame`` is the one call the
app and ``bench/bench_live.py`` make per frame.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy.optimize import linear_sum_assignment

from .detect import Detector, DetectorSettings, shared_detector
from .track import APPEARANCE_SIGHTINGS, Sighting, TrackSettings, link_score
from .types import Box, Face


@dataclass(frozen=True)
class LiveSettings:
    """How live frames are analysed and smoothed.

    ``detect_side``: frames are downscaled so their longer side is at most this many pixels
    before anything else (a webcam's 1280x720 costs MTCNN four times 640x360).
    ``min_face_size``: smallest face found, pixels of the downscaled frame (a face at arm's
    length is 150-300 px there; a larger minimum prunes MTCNN's costliest pyramid levels).
    ``half_life``: seconds after which a new reading has half the weight in a person's smoothed
    probabilities. ``history_seconds``: how far back the chart reaches; ``history_step``:
    seconds between the chart's points per person; ``chart_every``: seconds between chart
    redraws. ``forget_after``: seconds unseen after which a person is dropped (their history
    stays until it ages out). ``max_people``: people followed at once, the largest faces kept.
    ``test_time_flip``: average each face with its mirror image (twice the network's cost).
    """

    detect_side: int = 640
    min_face_size: int = 48
    half_life: float = 0.4
    history_seconds: float = 20.0
    history_step: float = 0.25
    chart_every: float = 0.5
    forget_after: float = 3.0
    max_people: int = 8
    test_time_flip: bool = False
    tracking: TrackSettings = field(default_factory=lambda: TrackSettings(max_gap=1.0, min_iou=0.2))

    def __post_init__(self) -> None:
        if self.detect_side < 64 or self.min_face_size < 12:
            raise ValueError("detect_side must be >= 64 and min_face_size >= 12")
        for name in ("half_life", "history_seconds", "history_step", "chart_every", "forget_after"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.max_people < 1:
            raise ValueError(f"max_people must be >= 1, got {self.max_people}")


@dataclass(frozen=True, eq=False)
class LivePerson:
    """One person followed in a live session. ``emotions`` and ``genders`` are smoothed
    probabilities (float64, in the model's label order, summing to 1), ``age`` smoothed years;
    ``embeddings`` their last few identity embeddings (for telling people apart)."""

    id: int
    box: Box
    velocity: tuple[float, float]  # box centre, pixels per second
    last_seen: float
    first_seen: float
    emotions: np.ndarray
    age: float
    genders: np.ndarray
    embeddings: tuple[np.ndarray, ...]

    def appearance(self) -> np.ndarray:
        total = np.sum([e / (np.linalg.norm(e) or 1.0) for e in self.embeddings], axis=0)
        return total / (np.linalg.norm(total) or 1.0)

    def predicted_box(self, t: float) -> Box:
        dt = t - self.last_seen
        dx, dy = self.velocity[0] * dt, self.velocity[1] * dt
        x1, y1, x2, y2 = self.box
        return (x1 + dx, y1 + dy, x2 + dx, y2 + dy)


@dataclass(frozen=True)
class LiveSample:
    """One point of the chart: person ``person``'s smoothed emotions at ``t`` seconds."""

    t: float
    person: int
    emotions: tuple[float, ...]


@dataclass(frozen=True)
class LiveState:
    """Everything a live session remembers. Times are seconds on the caller's clock
    (``time.monotonic()`` in the app). ``frame_times``: when the last frames were analysed,
    for the frame rate shown. A fresh session is ``LiveState(started=t)``."""

    started: float
    frames: int = 0
    next_id: int = 1
    people: tuple[LivePerson, ...] = ()
    history: tuple[LiveSample, ...] = ()
    frame_times: tuple[float, ...] = ()
    last_chart: float = -math.inf

    @property
    def last_frame(self) -> float:
        return self.frame_times[-1] if self.frame_times else self.started

    def frame_rate(self) -> float:
        """Frames analysed per second over the last frames (0 before two frames)."""
        if len(self.frame_times) < 2:
            return 0.0
        span = self.frame_times[-1] - self.frame_times[0]
        return (len(self.frame_times) - 1) / span if span > 0 else 0.0

    def history_of(self, person: int) -> tuple[np.ndarray, np.ndarray]:
        """(times (N,), smoothed emotions (N, K)) of one person's chart points, oldest first."""
        samples = [s for s in self.history if s.person == person]
        if not samples:
            return np.zeros(0), np.zeros((0, 0))
        return np.array([s.t for s in samples]), np.array([s.emotions for s in samples])

    def charted_people(self) -> list[int]:
        """Ids of the people with chart points, in order of first appearance."""
        return sorted({s.person for s in self.history})


@dataclass(frozen=True, eq=False)
class LiveFace:
    """A person in the current frame: their id, this frame's box and smoothed outputs
    (``face``: a Face with the smoothed probabilities, drawable by face_mtl.render)."""

    person: int
    face: Face


def downscale(frame: np.ndarray, max_side: int) -> np.ndarray:
    """``frame`` (HxWx3 uint8 RGB) resized so its longer side is at most ``max_side`` pixels
    (aspect ratio kept; returned unchanged when already small enough)."""
    height, width = frame.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1.0:
        return frame
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(frame).resize(size, Image.BILINEAR))


def live_detector(settings: LiveSettings, device: str = "cpu") -> Detector:
    """The shared MTCNN detector for live frames (already downscaled to ``detect_side``)."""
    detector_settings = DetectorSettings(
        min_face_size=settings.min_face_size, max_side=settings.detect_side, max_faces=settings.max_people
    )
    return shared_detector(detector_settings, device)


def live_analyzer(analyzer, settings: LiveSettings):
    """A view of ``analyzer`` (a FaceAnalyzer) for live frames: the same loaded model, with
    ``settings.test_time_flip``; ``analyzer`` itself is left as it is (other tabs share it)."""
    view = copy.copy(analyzer)  # shallow: shares the model, detector and limits
    view.test_time_flip = settings.test_time_flip
    return view


def _ema_weight(dt: float, half_life: float) -> float:
    # Weight of the new reading after dt seconds: frame-rate independent, unlike a fixed alpha.
    return 1.0 - 0.5 ** (max(dt, 0.0) / half_life)


def _link(people: Sequence[LivePerson], faces: Sequence[Face], t: float, tracking: TrackSettings) -> dict[int, int]:
    """face index -> person index, the links of largest total score (face_mtl.track's)."""
    if not people or not faces:
        return {}
    sightings = [Sighting(0, t, f.box, f.embedding, i) for i, f in enumerate(faces)]
    scores = np.zeros((len(people), len(faces)))
    for pi, person in enumerate(people):
        box = person.predicted_box(t) if t - person.last_seen <= tracking.max_gap else None
        appearance = person.appearance()
        for si, sighting in enumerate(sightings):
            scores[pi, si] = link_score(box, appearance, sighting, tracking)
    return {
        int(si): int(pi)
        for pi, si in zip(*linear_sum_assignment(scores, maximize=True))
        if scores[pi, si] > 0
    }


def _new_person(pid: int, face: Face, t: float, labels: Sequence[str], genders: Sequence[str]) -> LivePerson:
    return LivePerson(
        id=pid,
        box=face.box,
        velocity=(0.0, 0.0),
        last_seen=t,
        first_seen=t,
        emotions=np.array([face.emotions[k] for k in labels], dtype=np.float64),
        age=float(face.age),
        genders=np.array([face.genders[k] for k in genders], dtype=np.float64),
        embeddings=(face.embedding,),
    )


def _update_person(person: LivePerson, face: Face, t: float, settings: LiveSettings,
                   labels: Sequence[str], genders: Sequence[str]) -> LivePerson:
    dt = t - person.last_seen
    w = _ema_weight(dt, settings.half_life)
    emotions = np.array([face.emotions[k] for k in labels], dtype=np.float64)
    gender = np.array([face.genders[k] for k in genders], dtype=np.float64)
    velocity = (0.0, 0.0)
    if 0 < dt <= settings.tracking.max_gap:
        cx = (face.box[0] + face.box[2] - person.box[0] - person.box[2]) / 2 / dt
        cy = (face.box[1] + face.box[3] - person.box[1] - person.box[3]) / 2 / dt
        # Half new, half old, as face_mtl.track does: detector jitter should not throw it off.
        velocity = (0.5 * (person.velocity[0] + cx), 0.5 * (person.velocity[1] + cy))
    return LivePerson(
        id=person.id,
        box=face.box,  # boxes are not smoothed: they must stay on the face as it moves
        velocity=velocity,
        last_seen=t,
        first_seen=person.first_seen,
        emotions=(1 - w) * person.emotions + w * emotions,
        age=(1 - w) * person.age + w * float(face.age),
        genders=(1 - w) * person.genders + w * gender,
        embeddings=(*person.embeddings, face.embedding)[-APPEARANCE_SIGHTINGS:],
    )


def smoothed_face(person: LivePerson, labels: Sequence[str], genders: Sequence[str], raw: Face) -> Face:
    """A Face with ``person``'s smoothed emotions, age and gender, and ``raw``'s box, score,
    landmarks, ethnicity and embedding (this frame's)."""
    emotions = {k: float(p) for k, p in zip(labels, person.emotions)}
    gender_probs = {k: float(p) for k, p in zip(genders, person.genders)}
    return Face(
        box=raw.box,
        score=raw.score,
        landmarks=raw.landmarks,
        emotion=max(emotions, key=emotions.get),
        emotions=emotions,
        age=person.age,
        gender=max(gender_probs, key=gender_probs.get),
        genders=gender_probs,
        ethnicity=raw.ethnicity,
        ethnicities=raw.ethnicities,
        embedding=raw.embedding,
    )


def advance(
    state: LiveState,
    faces: Sequence[Face],
    t: float,
    labels: Sequence[str],
    genders: Sequence[str],
    settings: LiveSettings = LiveSettings(),
) -> tuple[LiveState, tuple[LiveFace, ...]]:
    """The session after one more frame, and the people in that frame.

    ``faces``: the frame's faces (boxes, probabilities, embeddings) as FaceAnalyzer returns
    them; ``t``: the frame's time in seconds (non-decreasing); ``labels``/``genders``: the
    model's emotion and gender labels (the probabilities' order). Each face continues the
    person it links to (face_mtl.track.link_score) or starts a new one; their probabilities are
    averaged over time (half-life ``settings.half_life``). People unseen for ``forget_after``
    seconds are dropped; chart points older than ``history_seconds`` too. Returns the new state
    and one LiveFace per face, in the order of ``faces``. Pure: ``state`` is not changed.
    """
    faces = [f for f in faces if f.box is not None]
    links = _link(state.people, faces, t, settings.tracking)
    people = list(state.people)
    next_id = state.next_id
    shown: list[LiveFace] = []
    for fi, face in enumerate(faces):
        if fi in links:
            pi = links[fi]
            people[pi] = _update_person(people[pi], face, t, settings, labels, genders)
            person = people[pi]
        else:
            person = _new_person(next_id, face, t, labels, genders)
            next_id += 1
            people.append(person)
        shown.append(LiveFace(person.id, smoothed_face(person, labels, genders, face)))
    people = [p for p in people if t - p.last_seen <= settings.forget_after]

    history = [s for s in state.history if t - s.t <= settings.history_seconds]
    last_point = {s.person: s.t for s in history}
    for live in shown:
        # A point per history_step is plenty for a 20 s chart and keeps the state small.
        if t - last_point.get(live.person, -math.inf) >= settings.history_step - 1e-9:
            values = tuple(round(live.face.emotions[k], 4) for k in labels)
            history.append(LiveSample(t, live.person, values))
    frame_times = (*state.frame_times, t)[-20:]
    new_state = LiveState(
        started=state.started,
        frames=state.frames + 1,
        next_id=next_id,
        people=tuple(people),
        history=tuple(history),
        frame_times=frame_times,
        last_chart=state.last_chart,
    )
    return new_state, tuple(shown)


def current_session(state: LiveState | None, ended_at: float | None) -> LiveState | None:
    """``state`` if its session began after the last session end at ``ended_at`` (None: none
    yet), else None (a new session starts). Why: a frame still being analysed when a session
    ends writes its state back after the end; the next stream must not continue it."""
    if state is None or (ended_at is not None and state.started <= ended_at):
        return None
    return state


def chart_due(state: LiveState, t: float, settings: LiveSettings = LiveSettings()) -> bool:
    """Whether the chart should be redrawn at ``t``: at most once per ``chart_every`` seconds
    (every frame would cost more than the frame itself)."""
    return t - state.last_chart >= settings.chart_every


def with_chart_drawn(state: LiveState, t: float) -> LiveState:
    """``state`` noting that the chart was drawn at ``t``."""
    return LiveState(state.started, state.frames, state.next_id, state.people, state.history,
                     state.frame_times, last_chart=t)


@dataclass(frozen=True, eq=False)
class LiveFrame:
    """One analysed frame: ``image`` the downscaled frame (HxWx3 uint8 RGB, the pixels the boxes
    refer to), ``faces`` the people in it, ``state`` the session after it."""

    image: np.ndarray
    faces: tuple[LiveFace, ...]
    state: LiveState


def analyze_live_frame(
    analyzer,
    detector: Detector,
    frame: np.ndarray,
    state: LiveState | None,
    t: float,
    settings: LiveSettings = LiveSettings(),
) -> LiveFrame:
    """Analyse one camera frame (HxWx3 uint8 RGB, any size) of a live session.

    The frame is downscaled to ``settings.detect_side``, faces are found by ``detector``
    (``live_detector(settings)``) and ``analyzer`` (a FaceAnalyzer) runs its network on them,
    then ``advance`` links and smooths them. ``state`` None starts a session at ``t``.
    """
    small = downscale(np.ascontiguousarray(frame), settings.detect_side)
    detections = detector.detect(small)
    faces = analyzer.analyze_detections(small, detections) if detections else []
    config = analyzer.config
    state, shown = advance(state or LiveState(started=t), faces, t, config.emotions, config.genders, settings)
    return LiveFrame(image=small, faces=shown, state=state)
