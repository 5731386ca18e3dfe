"""How a live camera frame and its session are shown: labelled boxes, the frame as an inline
image, the per-person chart of the last seconds. Pure functions; nothing is written to disk."""

from __future__ import annotations

import base64
import functools
import html
import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.io as pio
from gradio.components.plot import PlotData
from PIL import Image

from ..live import LiveFace, LiveState
from .draw import draw_faces, emotion_color

JPEG_QUALITY = 80  # a 640x480 frame is ~40 kB and encodes in a few milliseconds
MAX_CHART_PEOPLE = 4  # more rows would be too small to read beside the camera
CHART_ROW_HEIGHT = 170


def live_label(live: LiveFace) -> str:
    """The two-line label of a person, e.g. "1 happiness 72%" over "~34 y, female"."""
    face = live.face
    return f"{live.person} {face.emotion} {face.emotions[face.emotion]:.0%}\n~{face.age:.0f} y, {face.gender}"


def annotate_live(image: np.ndarray, faces: Sequence[LiveFace]) -> np.ndarray:
    """``image`` (HxWx3 uint8 RGB) with each person's box and label, coloured by their smoothed
    expression. Returns a new array."""
    if not faces:
        return image
    return draw_faces(image, [f.face for f in faces], [live_label(f) for f in faces])


def frame_html(image: np.ndarray, faces: Sequence[LiveFace], alt: str = "Camera frame with the faces found") -> str:
    """An HTML block showing ``image`` inline (a JPEG data URL, so no file is ever written),
    with the boxes as data attributes (``data-faces``: how many; ``data-boxes``: JSON list of
    [person, x1, y1, x2, y2, "emotion"] in the image's pixels) for scripts and tests."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    boxes = [[f.person, *(round(v, 1) for v in f.face.box), f.face.emotion] for f in faces]
    height, width = image.shape[:2]
    return (
        f'<div class="live-frame" data-faces="{len(faces)}" data-boxes="{html.escape(json.dumps(boxes))}">'
        f'<img src="data:image/jpeg;base64,{data}" width="{width}" height="{height}" '
        f'alt="{html.escape(alt)}" style="max-width:100%;height:auto"></div>'
    )


def _rgb(color: tuple[int, int, int]) -> str:
    return f"rgb({color[0]},{color[1]},{color[2]})"


@functools.lru_cache(maxsize=1)
def _white_template() -> dict[str, Any]:
    # The other tabs' look (plotly_white), expanded once: plotly.js knows no template names.
    return pio.templates["plotly_white"].to_plotly_json()


def history_figure(state: LiveState, labels: Sequence[str], now: float, seconds: float) -> dict[str, Any]:
    """One row per person (the MAX_CHART_PEOPLE most recent), their smoothed emotion
    probabilities over the last ``seconds`` seconds (x: seconds before ``now``), one line per
    emotion in the image's colours. Returns a Plotly figure as a plain dict ({"data", "layout"}:
    ``go.Figure(spec)`` builds it; ``plot_data`` hands it to gr.Plot). Why not a go.Figure:
    validating one costs 100-300 ms, more than a live frame."""
    people = state.charted_people()[-MAX_CHART_PEOPLE:]
    if not people:
        return {"data": [], "layout": {
            "template": _white_template(), "height": 160, "margin": {"l": 10, "r": 10, "t": 10, "b": 10},
            "xaxis": {"visible": False}, "yaxis": {"visible": False},
            "annotations": [{"text": "No face yet: look into the camera", "showarrow": False,
                             "font": {"size": 15}, "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5}],
        }}  # fmt: skip
    rows = len(people)
    gap = 0.08 if rows > 1 else 0.0
    height = (1.0 - gap * (rows - 1)) / rows
    traces, layout = [], {}
    for row, person in enumerate(people):
        times, values = state.history_of(person)
        axis = "" if row == 0 else str(row + 1)
        top = 1.0 - row * (height + gap)
        domain = [max(0.0, round(top - height, 6)), min(1.0, round(top, 6))]  # float error leaves [0, 1]
        layout[f"yaxis{axis}"] = {"domain": domain, "range": [0, 1], "tickformat": ".0%",
                                  "title": {"text": f"Person {person}"}}
        layout[f"xaxis{axis}"] = {"range": [-seconds, 0], "anchor": f"y{axis}", "showticklabels": row == rows - 1}
        x = np.round(times - now, 2).tolist()
        for k, label in enumerate(labels):
            traces.append({
                "type": "scatter", "mode": "lines", "x": x, "y": values[:, k].tolist(),
                "name": label, "legendgroup": label, "showlegend": row == 0,
                "line": {"color": _rgb(emotion_color(label)), "width": 2},
                "xaxis": f"x{axis}", "yaxis": f"y{axis}",
                "hovertemplate": f"Person {person} · {label}: %{{y:.0%}}<extra></extra>",
            })
    layout.update(
        template=_white_template(),
        height=100 + CHART_ROW_HEIGHT * rows,
        margin={"l": 60, "r": 10, "t": 70, "b": 40},  # room for the legend under the label
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0},
        uirevision="live",  # keeps the user's zoom and legend choices across redraws
    )
    layout[f"xaxis{'' if rows == 1 else rows}"]["title"] = {"text": "seconds ago"}
    return {"data": traces, "layout": layout}


def plot_data(spec: dict[str, Any]) -> PlotData:
    """A figure dict as gr.Plot's value, serialised once without Plotly's validation."""
    return PlotData(type="plotly", plot=json.dumps(spec))
