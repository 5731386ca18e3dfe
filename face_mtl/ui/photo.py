"""Handlers of the Photo tab: analyse one uploaded photo, export its results."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..analyzer import FaceAnalyzer
from ..errors import FaceMTLInputError
from ..images import load_image
from ..limits import Limits
from ..render.photo import TABLE_COLUMNS, render_photo, results_csv
from . import FACE_HINT, fresh_export_folder, input_error, on_gpu, picture_file, uploaded_file

EXAMPLE_NAMES = ("group.jpg", "astronaut.png", "grace_hopper.jpg")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")

NO_PHOTO_MESSAGE = "Add a photo first: upload one, paste it from the clipboard or take one with the webcam."
NO_FACE_MESSAGE = f"No face found in this photo. {FACE_HINT}; try a larger or sharper photo."

PhotoOutputs = tuple[str, pd.DataFrame, go.Figure, dict[str, Any]]


def example_photos(folder: str | Path) -> list[str]:
    """Example photo paths in ``folder``: EXAMPLE_NAMES first (group photo leading), then any
    other images, sorted."""
    folder = Path(folder)
    known = [folder / name for name in EXAMPLE_NAMES if (folder / name).is_file()]
    others = sorted(
        p for p in folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.name not in EXAMPLE_NAMES
    )
    return [str(p) for p in known + others]


def read_photo(upload: str | dict | None, limits: Limits | None = None) -> np.ndarray:
    """The uploaded photo as HxWx3 uint8 RGB. ``upload``: a path, or Gradio's FileData dict (the
    Photo input is left unprocessed, so that face_mtl reads every file itself). gr.Error with
    face_mtl's own message, naming the user's file, when there is none, it is not a photo
    face_mtl reads, or it is outside ``limits`` (default: the process's)."""
    found = uploaded_file(upload)
    if found is None:
        raise gr.Error(NO_PHOTO_MESSAGE, title="No photo", print_exception=False)
    path, name = found
    try:
        return load_image(path, limits)
    except FaceMTLInputError as error:
        raise input_error(error, name) from None


def make_analyze_image(analyzer: FaceAnalyzer) -> Callable[[str | dict | None], PhotoOutputs]:
    """The Photo tab's handler (API name ``analyze_image``) bound to a loaded ``analyzer``,
    whose limits it applies.

    Detection and the network run under ``spaces.GPU`` on ZeroGPU; drawing stays outside it.
    """
    analyze = on_gpu(analyzer.analyze)

    def analyze_image(image: str | dict | None) -> PhotoOutputs:
        """Find every face in a photo and estimate its expression, age, gender and ethnicity.

        Args:
            image: a photo file (JPEG, PNG, WebP...).

        Returns:
            annotated photo, a WebP file (boxes and numbered labels; at most 2048 pixels on the
            longer side),
            table with one row per face, Plotly chart of each face's emotion probabilities, and
            the results as JSON (boxes in the original photo's pixels).
        """
        rgb = read_photo(image, analyzer.limits)
        faces = analyze(rgb)
        if not faces:
            raise gr.Error(NO_FACE_MESSAGE, title="No face found", print_exception=False)
        if len(faces) >= analyzer.max_faces:
            gr.Info(f"Showing the {len(faces)} largest faces: the limit per photo is {analyzer.max_faces}.")
        result = render_photo(rgb, faces)
        return picture_file(result.annotated, "photo", "face_mtl_annotated"), result.table, result.chart, result.results

    return analyze_image


def empty_table(columns: Sequence[str] = TABLE_COLUMNS) -> pd.DataFrame:
    """A table with headers and no rows, shown before any analysis (faces table by default)."""
    return pd.DataFrame(columns=list(columns))


def clear_outputs() -> tuple[None, pd.DataFrame, None, None]:
    """Blank outputs for a new photo, so an old photo's results never sit beside it."""
    return None, empty_table(), None, None


def export_results(results: dict[str, Any] | None) -> list[str] | None:
    """Write the JSON results (as returned by ``analyze_image``) to face_mtl_results.json and
    .csv in a fresh temporary folder and return both paths; None when there are no results."""
    if not results or not results.get("faces"):
        return None
    folder = fresh_export_folder("photo")
    json_path = folder / "face_mtl_results.json"
    csv_path = folder / "face_mtl_results.csv"
    json_path.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    csv_path.write_text(results_csv(results), encoding="utf-8")
    return [str(json_path), str(csv_path)]
