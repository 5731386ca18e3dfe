"""Handler of the Compare tab: are the faces in two photos the same person?"""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr
import plotly.graph_objects as go

from ..analyzer import FaceAnalyzer
from ..render.identity import annotate_numbered, similarity_heatmap, verdict_text
from ..types import NoFaceError
from . import FACE_HINT, on_gpu, picture_file
from .photo import read_photo

PHOTO_NAMES = {"image A": "first", "image B": "second"}

CompareOutputs = tuple[str, str, str, go.Figure | None]


def no_face_message(which: str) -> str:
    """The message for a photo without a face; ``which`` is "first" or "second"."""
    return f"No face found in the {which} photo. {FACE_HINT}; try a larger or sharper photo."


def make_compare_faces(analyzer: FaceAnalyzer) -> Callable[[str | None, str | None], CompareOutputs]:
    """The Compare tab's handler (API name ``compare_faces``) bound to a loaded ``analyzer``.

    Detection and the network run under ``spaces.GPU`` on ZeroGPU; drawing stays outside it.
    """
    compare = on_gpu(analyzer.compare)

    def compare_faces(image_a: str | None, image_b: str | None) -> CompareOutputs:
        """Say whether the largest faces of two photos belong to the same person.

        Args:
            image_a: path of the first photo (JPEG, PNG, WebP...).
            image_b: path of the second photo.

        Returns:
            the first and the second photo (WebP files) with their faces boxed and labelled A1, A2... and
            B1, B2... (largest first); the verdict in words, e.g. "Same person — similarity
            0.71, threshold 0.34" (cosine similarity of A1 and B1 against the calibrated
            threshold); a Plotly heatmap of every face pair's similarity when a photo has
            several faces, else None.
        """
        rgb_a, rgb_b = read_photo(image_a), read_photo(image_b)
        try:
            comparison = compare(rgb_a, rgb_b)
        except NoFaceError as error:
            which = PHOTO_NAMES.get(error.image, "one")
            raise gr.Error(no_face_message(which), title="No face found", print_exception=False) from None
        several = len(comparison.faces_a) > 1 or len(comparison.faces_b) > 1
        return (
            picture_file(annotate_numbered(rgb_a, comparison.faces_a, "A"), "compare", "face_mtl_photo_a"),
            picture_file(annotate_numbered(rgb_b, comparison.faces_b, "B"), "compare", "face_mtl_photo_b"),
            verdict_text(comparison),
            similarity_heatmap(comparison) if several else None,
        )

    return compare_faces


def clear_compare_outputs() -> tuple[None, None, str, None]:
    """Blank outputs for a new photo, so an old verdict never sits beside it."""
    return None, None, "", None
