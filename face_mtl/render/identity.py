"""How identity results are shown: verdict sentences, similarity heatmaps, numbered photos,
contact sheets of a person's faces.

Pure functions; nothing here reads files or runs a model. Faces are labelled "A1", "A2", ...
and "B1", ... in the analyzer's largest-first order, the same on the photos and the heatmap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw, ImageFont

from ..types import Comparison, Face
from .photo import annotate_photo


def face_labels(prefix: str, count: int) -> list[str]:
    """["A1", "A2", ...]: the labels of ``count`` faces of the photo called ``prefix``."""
    return [f"{prefix}{number}" for number in range(1, count + 1)]


def annotate_numbered(image: np.ndarray, faces: Sequence[Face], prefix: str) -> np.ndarray:
    """The photo (HxWx3 uint8 RGB) with each face boxed and labelled ``prefix`` + number;
    downscaled like the Photo tab's preview."""
    return annotate_photo(image, faces, labels=face_labels(prefix, len(faces)))


def verdict_text(comparison: Comparison) -> str:
    """One sentence, e.g. "Same person — similarity 0.71, threshold 0.48" (largest faces,
    A1 against B1), with a note when the threshold is the uncalibrated default."""
    verdict = "Same person" if comparison.same_person else "Different people"
    text = f"{verdict} — similarity {comparison.similarity:.2f}, threshold {comparison.threshold:.2f}"
    if comparison.threshold_source != "calibrated":
        text += " (uncalibrated default threshold: these weights carry no calibration)"
    return text


def similarity_heatmap(comparison: Comparison) -> go.Figure:
    """Heatmap of the face-by-face cosine similarities: rows A's faces, columns B's faces,
    the colour scale centred on the threshold (blue: same person, red: different)."""
    matrix = np.asarray(comparison.matrix, np.float64)
    rows = face_labels("A", matrix.shape[0])
    columns = face_labels("B", matrix.shape[1])
    figure = go.Figure(
        go.Heatmap(
            z=matrix.round(3).tolist(),  # plain lists: readable JSON for API clients
            x=columns,
            y=rows,
            zmin=-1.0,
            zmax=1.0,
            zmid=comparison.threshold,
            colorscale="RdBu",
            colorbar={"title": {"text": "similarity"}},
            texttemplate="%{z:.2f}",
            hovertemplate="%{y} vs %{x}: %{z:.3f}<extra></extra>",
        )
    )
    figure.update_layout(
        title=f"Similarity of every face pair (same person at ≥ {comparison.threshold:.2f})",
        template="plotly_white",
        xaxis={"title": "photo B", "side": "top", "type": "category"},
        yaxis={"title": "photo A", "autorange": "reversed", "type": "category"},
        margin={"l": 60, "r": 10, "t": 90, "b": 20},
        height=max(260, 60 * len(rows) + 140),
    )
    return figure


def contact_sheet(thumbnails: Sequence[np.ndarray], title: str, columns: int = 8, gap: int = 4) -> np.ndarray:
    """A grid of face thumbnails (each SxSx3 uint8 RGB, all the same size) under a title
    line, on white: HxWx3 uint8 RGB, at most ``columns`` faces per row."""
    if not thumbnails:
        raise ValueError("a contact sheet needs at least one face")
    side = thumbnails[0].shape[0]
    columns = max(1, min(columns, len(thumbnails)))
    rows = math.ceil(len(thumbnails) / columns)
    font = ImageFont.load_default(size=max(12, side // 7))
    ascent, descent = font.getmetrics()
    header = ascent + descent + 2 * gap
    width = max(columns * (side + gap) + gap, math.ceil(font.getlength(title)) + 2 * gap)
    sheet = Image.new("RGB", (width, header + rows * (side + gap) + gap), (255, 255, 255))
    ImageDraw.Draw(sheet).text((gap, gap), title, font=font, fill=(0, 0, 0))
    for i, thumbnail in enumerate(thumbnails):
        row, column = divmod(i, columns)
        sheet.paste(Image.fromarray(np.asarray(thumbnail)), (gap + column * (side + gap), header + row * (side + gap)))
    return np.asarray(sheet)
