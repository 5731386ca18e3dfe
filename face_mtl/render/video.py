"""Everything a clip's analysis is shown as: timelines, the people table, CSV, annotated frames.

Pure functions of a ``VideoResult``; nothing here reads or writes files. Person numbers are
the track ids, the same on the annotated clip, the timeline titles, the table and the exports.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..types import Face, TrackResult, VideoResult
from .draw import draw_faces, emotion_color

# Samples further apart than this many sampling intervals are a gap: timelines break there
# and the annotated clip shows no box in between.
GAP_INTERVALS = 2.5
ROW_HEIGHT = 230  # timeline pixels per person
MAX_TIMELINE_PEOPLE = 12  # beyond this the figure gets unreadable; the table lists everyone

TABLE_COLUMNS = (
    "person",
    "seen (s)",
    "frames",
    "mostly",
    "time share",
    "clip-level emotion (mean ± std)",
    "age",
    "gender",
    "ethnicity",
)


def _rgb(color: tuple[int, int, int]) -> str:
    return f"rgb({color[0]},{color[1]},{color[2]})"


def _with_gaps(times: np.ndarray, values: np.ndarray, max_step: float) -> tuple[np.ndarray, np.ndarray]:
    """Insert a NaN row after every step longer than ``max_step`` seconds (Plotly breaks lines there)."""
    breaks = np.flatnonzero(np.diff(times) > max_step) + 1
    if not len(breaks):
        return times, values
    gap_times = (times[breaks - 1] + times[breaks]) / 2
    return (
        np.insert(times, breaks, gap_times),
        np.insert(values.astype(np.float64), breaks, np.nan, axis=0),
    )


def track_title(track: TrackResult) -> str:
    """E.g. "Person 1: mostly happiness (62%), seen 0.0–19.7 s"."""
    s = track.summary
    dominant = s["dominant_emotion"]
    return (
        f"Person {track.id}: mostly <b>{dominant}</b> ({s['emotion_share'][dominant]:.0%}), "
        f"seen {s['first_seen']:.1f}–{s['last_seen']:.1f} s"
    )


def timeline_figure(result: VideoResult) -> go.Figure:
    """One subplot per person (first MAX_TIMELINE_PEOPLE), smoothed emotion probabilities over
    time, one line per emotion in EMOTION_COLORS; the person's dominant emotion is named in the
    subplot title and drawn thicker. Hovering shows every emotion's value at that time."""
    tracks = result.tracks[:MAX_TIMELINE_PEOPLE]
    if not tracks:
        figure = go.Figure()
        figure.add_annotation(text="No faces found in this clip", showarrow=False, font={"size": 16})
        figure.update_layout(height=200, xaxis={"visible": False}, yaxis={"visible": False})
        return figure
    figure = make_subplots(
        rows=len(tracks),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=min(0.12, 0.5 / len(tracks)),
        subplot_titles=[track_title(t) for t in tracks],
    )
    max_step = GAP_INTERVALS / result.fps
    for row, track in enumerate(tracks, start=1):
        times, values = _with_gaps(track.times, track.emotions, max_step)
        dominant = track.summary["dominant_emotion"]
        for k, label in enumerate(result.labels):
            figure.add_trace(
                go.Scatter(
                    x=times,
                    y=values[:, k],
                    mode="lines",
                    name=label,
                    legendgroup=label,
                    showlegend=row == 1,
                    line={"color": _rgb(emotion_color(label)), "width": 3.5 if label == dominant else 1.5},
                    hovertemplate=f"{label} %{{y:.0%}}<extra>Person {track.id}</extra>",
                ),
                row=row,
                col=1,
            )
        figure.update_yaxes(range=[0, 1], tickformat=".0%", title_text="probability", row=row, col=1)
    figure.update_xaxes(range=[0, result.duration], title_text="time (s)", row=len(tracks), col=1)
    figure.update_layout(
        height=120 + ROW_HEIGHT * len(tracks),
        hovermode="x unified",
        legend={
            "orientation": "h",
            "yanchor": "bottom",
            "y": 1.0 + 60 / (120 + ROW_HEIGHT * len(tracks)),
            "x": 0,
        },
        margin={"l": 60, "r": 20, "t": 90, "b": 50},
    )
    return figure


def people_table(result: VideoResult) -> pd.DataFrame:
    """One row per person (TABLE_COLUMNS): when seen, dominant emotion and time shares, the
    clip-level emotion (mean ± std of per-frame probabilities), median age, gender, ethnicity."""
    rows = []
    for track in result.tracks:
        s = track.summary
        shares = sorted(s["emotion_share"].items(), key=lambda item: item[1], reverse=True)
        video = s["video_emotion"]
        rows.append(
            (
                track.id,
                f"{s['first_seen']:.1f}–{s['last_seen']:.1f}",
                s["frames"],
                s["dominant_emotion"],
                ", ".join(f"{label} {share:.0%}" for label, share in shares[:3] if share > 0),
                f"{video} {s['emotion_mean'][video]:.2f} ± {s['emotion_std'][video]:.2f}",
                round(s["age"]),
                f"{s['gender']} {s['genders'][s['gender']]:.2f}",
                f"{s['ethnicity']} {s['ethnicities'][s['ethnicity']]:.2f}",
            )
        )
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def results_csv(result: VideoResult) -> str:
    """CSV text, one row per person per sampled frame: person, t (s), box (clip pixels), the
    top smoothed emotion and every smoothed probability."""
    buffer = io.StringIO()
    columns = ["person", "t", "x1", "y1", "x2", "y2", "emotion", *result.labels]
    pd.DataFrame(result.rows(), columns=columns).to_csv(buffer, index=False)
    return buffer.getvalue()


def track_state_at(track: TrackResult, t: float, fps: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(box (4,), smoothed emotion probabilities (K,)) of a person at time ``t`` seconds, or
    None when they are not seen then. Between two samples at most GAP_INTERVALS sampling
    intervals apart both are interpolated linearly; a sample alone covers half an interval
    either side of it."""
    times = track.times
    half = 0.5 / fps
    if t < times[0] - half or t > times[-1] + half:
        return None
    after = int(np.searchsorted(times, t, side="left"))
    if after < len(times) and times[after] == t:
        return track.boxes[after], track.emotions[after]
    before = after - 1
    if 0 <= before and after < len(times) and times[after] - times[before] <= GAP_INTERVALS / fps:
        w = (t - times[before]) / (times[after] - times[before])
        box = (1 - w) * track.boxes[before] + w * track.boxes[after]
        return box, (1 - w) * track.emotions[before] + w * track.emotions[after]
    nearest = min((i for i in (before, after) if 0 <= i < len(times)), key=lambda i: abs(times[i] - t))
    if abs(times[nearest] - t) <= half:
        return track.boxes[nearest], track.emotions[nearest]
    return None


def _face(track: TrackResult, labels: tuple[str, ...], box: np.ndarray, probs: np.ndarray) -> Face:
    # A Face of this person at one instant: smoothed emotions, the person's summary attributes.
    s = track.summary
    emotions = {label: float(p) for label, p in zip(labels, probs)}
    return Face(
        box=tuple(float(v) for v in box),
        score=None,
        landmarks=None,
        emotion=max(emotions, key=emotions.get),
        emotions=emotions,
        age=float(s["age"]),
        gender=s["gender"],
        genders=s["genders"],
        ethnicity=s["ethnicity"],
        ethnicities=s["ethnicities"],
        embedding=np.zeros(0, dtype=np.float32),
    )


def annotate_frame(frame: np.ndarray, result: VideoResult, t: float, scale: float = 1.0) -> np.ndarray:
    """``frame`` (HxWx3 uint8 RGB, the clip scaled by ``scale``) at time ``t`` seconds with a
    box per person seen then, coloured by their smoothed emotion and labelled
    "#id emotion probability". Returns a new array of the same shape."""
    faces, texts = [], []
    for track in result.tracks:
        state = track_state_at(track, t, result.fps)
        if state is None:
            continue
        face = _face(track, result.labels, state[0] * scale, state[1])
        faces.append(face)
        texts.append(f"#{track.id} {face.emotion} {face.emotions[face.emotion]:.0%}")
    if not faces:
        return frame
    return draw_faces(frame, faces, texts)
