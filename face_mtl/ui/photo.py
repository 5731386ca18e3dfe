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
from PIL import Image

from ..analyzer import FaceAnalyzer
from ..images import ImageLoadError, load_image
from ..render.photo import TABLE_COLUMNS, render_photo, results_csv
from . import FACE_HINT, fresh_export_folder, on_gpu

# Decoding is the memory risk, not the upload size: a 25 MB PNG can hold 400 megapixels.
MAX_PIXELS = 50_000_000
EXAMPLE_NAMES = ("group.jpg", "astronaut.png", "grace_hopper.jpg")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")

NO_PHOTO_MESSAGE = "Add a photo first: upload one, paste it from the clipboard or take one with the webcam."
NO_FACE_MESSAGE = f"No face found in this photo. {FACE_HINT}; try a larger or sharper photo."

PhotoOutputs = tuple[np.ndarray, pd.DataFrame, go.Figure, dict[str, Any]]


def example_photos(folder: str | Path) -> list[str]:
    """Example photo paths in ``folder``: EXAMPLE_NAMES first (group photo leading), then any
    other images, sorted."""
    folder = Path(folder)
    known = [folder / name for name in EXAMPLE_NAMES if (folder / name).is_file()]
    others = sorted(
        p for p in folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.name not in EXAMPLE_NAMES
    )
    return [str(p) for p in known + others]


def read_photo(path: str | Path | None) -> np.ndarray:
    """The photo at ``path`` as HxWx3 uint8 RGB; gr.Error with a readable message when there is
    none, it is not an image, or it has more than MAX_PIXELS pixels."""
    if path is None or str(path) == "":
        raise gr.Error(NO_PHOTO_MESSAGE, title="No photo", print_exception=False)
    limit = f"the limit is {MAX_PIXELS / 1e6:.0f} megapixels. Please resize it."
    try:
        # Only the header is read here, so an oversized photo is refused before it is decoded.
        with Image.open(path) as header:
            width, height = header.size
    except Image.DecompressionBombError:
        # Pillow refuses to open images over twice Image.MAX_IMAGE_PIXELS (about 179 MP).
        raise gr.Error(
            f"This photo has far too many pixels; {limit}", title="Photo too large", print_exception=False
        ) from None
    except (OSError, ValueError):
        width = height = 0  # load_image below names the actual problem
    if width * height > MAX_PIXELS:
        raise gr.Error(
            f"This photo is {width}×{height} pixels ({width * height / 1e6:.0f} megapixels); {limit}",
            title="Photo too large",
            print_exception=False,
        )
    try:
        return load_image(path)
    except ImageLoadError as error:
        # The message starts with the server-side path; users only need the file's name.
        message = str(error).replace(str(path), Path(path).name, 1)
        raise gr.Error(
            f"Could not read this file as a photo: {message}", title="Not a photo", print_exception=False
        ) from None


def make_analyze_image(analyzer: FaceAnalyzer) -> Callable[[str | None], PhotoOutputs]:
    """The Photo tab's handler (API name ``analyze_image``) bound to a loaded ``analyzer``.

    Detection and the network run under ``spaces.GPU`` on ZeroGPU; drawing stays outside it.
    """
    analyze = on_gpu(analyzer.analyze)

    def analyze_image(image: str | None) -> PhotoOutputs:
        """Find every face in a photo and estimate its expression, age, gender and ethnicity.

        Args:
            image: path of a photo file (JPEG, PNG, WebP...).

        Returns:
            annotated photo (boxes and numbered labels; at most 2048 pixels on the longer side),
            table with one row per face, Plotly chart of each face's emotion probabilities, and
            the results as JSON (boxes in the original photo's pixels).
        """
        rgb = read_photo(image)
        faces = analyze(rgb)
        if not faces:
            raise gr.Error(NO_FACE_MESSAGE, title="No face found", print_exception=False)
        result = render_photo(rgb, faces)
        return result.annotated, result.table, result.chart, result.results

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
