"""Everything a photo's analysis is shown as: annotated image, table, chart, JSON and CSV.

Pure functions of the faces found; nothing here reads files or runs a model. Face numbers
(1, 2, ...) follow the order of ``faces`` (the analyzer's largest-first order) and are the
same on the image labels, the table rows, the chart and the exports.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from PIL import Image

from ..config import EMOTIONS
from ..types import Face
from .draw import draw_faces, emotion_color

# The annotated image is a preview: beyond this many pixels on its longer side it is drawn on a
# downscaled copy (encoding and sending a 6000-pixel image to a browser is slow). Boxes in the
# table and exports stay in the original photo's pixels.
DISPLAY_MAX_SIDE = 2048

TABLE_COLUMNS = (
    "face",
    "box (x1, y1, x2, y2)",
    "detection score",
    "emotion",
    "emotion prob",
    "age",
    "gender",
    "gender prob",
    "ethnicity",
    "ethnicity prob",
)


@dataclass(frozen=True, eq=False)
class PhotoResult:
    """A rendered analysis of one photo.

    ``annotated``: HxWx3 uint8 RGB (the photo, downscaled to DISPLAY_MAX_SIDE at most, with
    boxes and labels); ``table``: one row per face (TABLE_COLUMNS); ``chart``: emotion
    probabilities per face; ``results``: JSON-serialisable dict (see ``results_dict``).
    """

    annotated: np.ndarray
    table: pd.DataFrame
    chart: go.Figure
    results: dict[str, Any]

    @property
    def face_count(self) -> int:
        return len(self.results["faces"])


def _scaled(face: Face, scale: float) -> Face:
    if face.box is None or scale == 1.0:
        return face
    return dataclasses.replace(face, box=tuple(v * scale for v in face.box))


def annotate_photo(
    image: np.ndarray, faces: Sequence[Face], max_side: int = DISPLAY_MAX_SIDE, labels: Sequence[str] | None = None
) -> np.ndarray:
    """``draw_faces`` on the photo (HxWx3 uint8 RGB), downscaled first when its longer side
    exceeds ``max_side``; labels (default: numbered 1.. in the order of ``faces``) as given."""
    height, width = image.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS))
    return draw_faces(image, [_scaled(face, scale) for face in faces], labels)


def _box_text(face: Face) -> str:
    return "" if face.box is None else ", ".join(f"{v:.0f}" for v in face.box)


def results_table(faces: Sequence[Face]) -> pd.DataFrame:
    """One row per face: number, box, detector score, each attribute and its probability
    (age is a point estimate in years, without a probability)."""
    rows = [
        (
            number,
            _box_text(face),
            None if face.score is None else round(face.score, 4),
            face.emotion,
            round(face.emotions[face.emotion], 3),
            round(face.age, 1),
            face.gender,
            round(face.genders[face.gender], 3),
            face.ethnicity,
            round(face.ethnicities[face.ethnicity], 3),
        )
        for number, face in enumerate(faces, 1)
    ]
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def emotion_chart(faces: Sequence[Face]) -> go.Figure:
    """Grouped bar chart: for each face (x axis) one bar per emotion, coloured as on the image."""
    names = [f"Face {number}" for number in range(1, len(faces) + 1)]
    emotions = list(faces[0].emotions) if faces else list(EMOTIONS)
    figure = go.Figure()
    for emotion in emotions:
        red, green, blue = emotion_color(emotion)
        figure.add_bar(
            name=emotion,
            x=names,
            y=[round(face.emotions.get(emotion, 0.0), 4) for face in faces],
            marker_color=f"rgb({red},{green},{blue})",
            hovertemplate="%{x} · " + emotion + ": %{y:.1%}<extra></extra>",
        )
    figure.update_layout(
        title="Emotion probabilities per face",
        barmode="group",
        template="plotly_white",
        yaxis={"title": "probability", "range": [0, 1], "tickformat": ".0%"},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        margin={"l": 50, "r": 10, "t": 80, "b": 40},
        height=380,
    )
    return figure


def results_dict(faces: Sequence[Face], width: int, height: int) -> dict[str, Any]:
    """The analysis as JSON-ready data: {"image": {"width", "height"}, "count", "faces": [...]},
    each face ``Face.to_dict()`` plus its number under "face". Boxes in original pixels."""
    return {
        "image": {"width": int(width), "height": int(height)},
        "count": len(faces),
        "faces": [{"face": number, **face.to_dict()} for number, face in enumerate(faces, 1)],
    }


def results_csv(results: dict[str, Any]) -> str:
    """CSV text with one row per face of a ``results_dict``: number, box, score, each attribute
    and every class probability (columns like "emotion_happiness"); no embedding."""
    rows = []
    for face in results["faces"]:
        box = face.get("box") or [None] * 4
        row = {
            "face": face["face"],
            "x1": box[0],
            "y1": box[1],
            "x2": box[2],
            "y2": box[3],
            "score": face["score"],
        }
        row.update({key: face[key] for key in ("emotion", "age", "gender", "ethnicity")})
        for group, prefix in (("emotions", "emotion"), ("genders", "gender"), ("ethnicities", "ethnicity")):
            row.update({f"{prefix}_{label}": p for label, p in face[group].items()})
        rows.append(row)
    buffer = io.StringIO()
    pd.DataFrame(rows, columns=list(rows[0]) if rows else ["face"]).to_csv(buffer, index=False)
    return buffer.getvalue()


def render_photo(image: np.ndarray, faces: Sequence[Face]) -> PhotoResult:
    """All views of one analysed photo (HxWx3 uint8 RGB; ``faces`` in its pixels)."""
    height, width = image.shape[:2]
    return PhotoResult(
        annotated=annotate_photo(image, faces),
        table=results_table(faces),
        chart=emotion_chart(faces),
        results=results_dict(faces, width, height),
    )
