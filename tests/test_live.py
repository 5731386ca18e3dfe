"""Live camera analysis: the pure session step on synthetic faces, then real frames of
examples/two_people.mp4 through the Live tab's own handler."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
from PIL import Image

from face_mtl.live import (
    LiveSettings,
    LiveState,
    advance,
    chart_due,
    current_session,
    downscale,
    with_chart_drawn,
)
from face_mtl.render.live import frame_html, history_figure, plot_data
from face_mtl.types import Face

ROOT = Path(__file__).resolve().parent.parent
LABELS = ("happiness", "neutral", "sadness")
GENDERS = ("female", "male")
RNG = np.random.default_rng(1)
ALICE, BOB, CAROL = (v / np.linalg.norm(v) for v in RNG.normal(size=(3, 64)))


def face(box, emotions, identity, age=30.0, female=0.8) -> Face:
    probs = dict(zip(LABELS, emotions))
    genders = {"female": female, "male": 1 - female}
    return Face(
        box=tuple(float(v) for v in box), score=0.99, landmarks=None,
        emotion=max(probs, key=probs.get), emotions=probs, age=age,
        gender=max(genders, key=genders.get), genders=genders,
        ethnicity="white", ethnicities={"white": 1.0},
        embedding=(identity + RNG.normal(scale=0.02, size=identity.size)).astype(np.float32),
    )  # fmt: skip


def run(frames, settings=LiveSettings(), fps=10.0, state=None):
    """Advance a session through ``frames`` (lists of Faces) at ``fps``; the states and shown faces."""
    state = state or LiveState(started=0.0)
    states, shown = [], []
    for i, faces in enumerate(frames):
        state, live = advance(state, faces, state.started + i / fps, LABELS, GENDERS, settings)
        states.append(state)
        shown.append(live)
    return states, shown


def test_smoothing_stops_a_flickering_label():
    # The raw expression flips every frame between two close readings; the label must not.
    readings = [(0.60, 0.40, 0.0), (0.45, 0.55, 0.0)]  # happiness 0.525 on average
    frames = [[face((100 + i, 100, 200 + i, 220), readings[i % 2], ALICE)] for i in range(30)]
    _, shown = run(frames)
    raw = [f[0].emotion for f in frames]
    smoothed = [live[0].face.emotion for live in shown]
    flips = lambda labels: sum(a != b for a, b in zip(labels, labels[1:]))  # noqa: E731
    assert flips(raw) == 29
    assert flips(smoothed) == 0 and smoothed[-1] == "happiness"
    probs = shown[-1][0].face.emotions
    assert sum(probs.values()) == pytest.approx(1.0)
    assert 0.51 < probs["happiness"] < 0.54  # near the readings' mean, not either reading


def test_half_life_is_in_seconds_not_frames():
    settings = LiveSettings(half_life=0.5)
    first = [face((0, 0, 100, 100), (1.0, 0.0, 0.0), ALICE)]
    second = [face((2, 0, 102, 100), (0.0, 1.0, 0.0), ALICE)]
    for fps in (2.0, 20.0):  # half a second later (2 fps): half each; 0.05 s later: ~7% new
        states, shown = run([first, second], settings, fps=fps)
        new_weight = 1 - 0.5 ** ((1 / fps) / 0.5)
        assert shown[1][0].face.emotions["neutral"] == pytest.approx(new_weight)


def test_people_keep_their_numbers_while_they_move_and_newcomers_get_new_ones():
    frames = []
    for i in range(12):
        faces = [face((50 + 4 * i, 80, 150 + 4 * i, 200), (0.9, 0.1, 0.0), ALICE),
                 face((400 - 4 * i, 90, 500 - 4 * i, 210), (0.1, 0.1, 0.8), BOB)]
        if i % 2:
            faces.reverse()  # the detector's order says nothing about who is who
        if i >= 8:
            faces.append(face((250, 300, 330, 400), (0.2, 0.8, 0.0), CAROL))
        frames.append(faces)
    states, shown = run(frames)
    for i, live in enumerate(shown):
        by_person = {f.person: f.face.box[0] for f in live}
        assert by_person[1] == 50 + 4 * i and by_person[2] == 400 - 4 * i
        assert set(by_person) == ({1, 2, 3} if i >= 8 else {1, 2})
    assert states[-1].next_id == 4
    assert [f.face.emotion for f in sorted(shown[-1], key=lambda f: f.person)] == ["happiness", "sadness", "neutral"]


def test_people_out_of_view_are_forgotten_and_history_is_bounded():
    settings = LiveSettings(forget_after=1.0, history_seconds=2.0, history_step=0.25)
    frames = [[face((10, 10, 110, 130), (0.7, 0.3, 0.0), ALICE)] for _ in range(10)] + [[] for _ in range(40)]
    states, _ = run(frames, settings, fps=10.0)
    assert len(states[9].people) == 1
    assert states[20].people == ()  # unseen for 1.1 s
    times, values = states[9].history_of(1)
    assert np.all(np.diff(times) >= 0.25 - 1e-9) and values.shape == (len(times), len(LABELS))
    assert states[-1].history == ()  # every point older than 2 s is gone
    assert states[-1].frames == 50 and states[-1].frame_rate() == pytest.approx(10.0)


def test_advance_is_pure():
    state = LiveState(started=5.0)
    new, _ = advance(state, [face((0, 0, 80, 80), (0.5, 0.5, 0.0), ALICE)], 5.0, LABELS, GENDERS)
    assert state == LiveState(started=5.0) and new.frames == 1 and len(new.people) == 1
    with pytest.raises(AttributeError):
        new.frames = 3


def test_a_state_from_before_the_last_session_end_is_not_continued():
    old = LiveState(started=10.0, frames=40)
    assert current_session(old, None) is old and current_session(old, 9.0) is old
    assert current_session(old, 12.0) is None  # written back by a frame that finished after the end
    assert current_session(None, 12.0) is None


def test_chart_is_redrawn_at_most_every_chart_every_seconds():
    settings = LiveSettings(chart_every=0.5)
    state = LiveState(started=0.0)
    assert chart_due(state, 0.0, settings)
    state = with_chart_drawn(state, 0.0)
    assert not chart_due(state, 0.4, settings) and chart_due(state, 0.5, settings)


def test_downscale_keeps_the_aspect_ratio():
    frame = np.zeros((720, 1280, 3), np.uint8)
    assert downscale(frame, 640).shape == (360, 640, 3)
    small = np.zeros((240, 320, 3), np.uint8)
    assert downscale(small, 640) is small


def test_history_figure_has_a_row_of_lines_per_person():
    frames = [[face((10, 10, 110, 130), (0.7, 0.3, 0.0), ALICE), face((300, 10, 400, 130), (0.1, 0.9, 0.0), BOB)]
              for _ in range(20)]
    states, _ = run(frames)
    spec = history_figure(states[-1], LABELS, now=1.9, seconds=20)
    figure = go.Figure(spec)  # a valid Plotly figure (Plotly validates it here)
    assert len(figure.data) == 2 * len(LABELS)
    assert {t.yaxis for t in figure.data} == {"y", "y2"}
    assert all(len(t.x) > 1 and max(t.x) <= 0 for t in figure.data)
    assert json.loads(plot_data(spec).plot) == json.loads(json.dumps(spec))
    empty = go.Figure(history_figure(LiveState(started=0.0), LABELS, now=0.0, seconds=20))
    assert len(empty.data) == 0 and "No face" in empty.layout.annotations[0].text


# ------------------------------------------------------------------------ real frames


@pytest.fixture(scope="module")
def clip_frames() -> list[np.ndarray]:
    from face_mtl.video import probe_video, read_frames

    info = probe_video(ROOT / "examples" / "two_people.mp4")
    return [np.array(f) for f in read_frames(info, 5.0, (info.width, info.height))]


def decode_frame(html: str) -> tuple[np.ndarray, list]:
    data = re.search(r'src="data:image/jpeg;base64,([^"]+)"', html).group(1)
    boxes = json.loads(re.search(r'data-boxes="([^"]*)"', html).group(1).replace("&quot;", '"'))
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")), boxes


def test_the_tabs_handler_follows_both_people_of_a_real_clip(clip_frames):
    import gradio as gr

    from face_mtl import FaceAnalyzer
    from face_mtl.render.draw import emotion_color
    from face_mtl.ui.live import make_live_step

    clock = iter(np.arange(len(clip_frames)) * 0.2)  # the frames' own times, 5 per second
    step = make_live_step(FaceAnalyzer(device="cpu"), clock=lambda: float(next(clock)))
    state, charts = None, []
    for frame in clip_frames[:12]:
        # Frames arrive at camera size; the handler downscales (1280 wide here -> 640).
        big = np.asarray(Image.fromarray(frame).resize((frame.shape[1] * 2, frame.shape[0] * 2)))
        html, chart, status, state = step(big, state)
        charts.append(chart)
    image, boxes = decode_frame(html)
    assert image.shape == clip_frames[0].shape  # 640x360: downscaled before anything else
    assert sorted(b[0] for b in boxes) == [1, 2] and state.next_id == 3  # two people, never renumbered
    for _person, x1, y1, x2, _y2, emotion in boxes:
        # The box's top edge is drawn in the person's expression colour (JPEG: roughly).
        edge = image[round(y1), round(x1) + 4 : round(x2) - 4].astype(int)
        assert np.median(np.abs(edge - np.array(emotion_color(emotion))).max(axis=1)) < 60
    assert "2 people in view" in status and "smoothed" in status
    drawn = [c for c in charts if not isinstance(c, type(gr.skip()))]
    assert 4 <= len(drawn) <= 7  # 2.4 s of frames, a chart every 0.5 s: not every frame
    assert len(json.loads(drawn[-1].plot)["data"]) == 2 * 8
    assert all(len(state.history_of(p)[0]) == 6 for p in (1, 2))  # a point per 0.25 s at most: every other frame


def test_frame_html_carries_the_frame_inline():
    image = RNG.integers(0, 255, size=(48, 64, 3), dtype=np.uint8)
    html = frame_html(image, [])
    decoded, boxes = decode_frame(html)
    assert decoded.shape == image.shape and boxes == [] and 'data-faces="0"' in html
    assert "file=" not in html  # nothing served from disk
