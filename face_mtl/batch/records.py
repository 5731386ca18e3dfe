"""Records: one plain dict per input, and the step that turns decoded images into them.

A record is ``{"image": path, "faces": [Face.to_dict(), ...]}``, or ``{"image": path,
"error": "one-line reason"}`` for a file that cannot be analysed (for clips, ``{"video":
path, ...VideoResult.to_dict()...}`` or ``{"video": path, "error": ...}``). A bad file is
never fatal: it becomes an error record.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..images import load_image

if TYPE_CHECKING:
    from ..analyzer import FaceAnalyzer
    from ..types import Face

# Error reasons longer than this are cut: records stay one short line each.
MAX_REASON = 300

Record = dict[str, Any]


class BatchError(Exception):
    """A whole run cannot start (an unknown output format, an engine that is not installed);
    the message is one line. Problems with single files become error records instead."""


def one_line_reason(error: BaseException, path: str) -> str:
    """``error`` as one short line, without the path the record already names."""
    text = str(error).strip()
    if text.startswith(f"{path}: "):
        text = text[len(path) + 2 :]
    # The project's own errors and bad-input errors read as they are; anything else (a bug,
    # a library failure) keeps its type name, which is most of what says what went wrong.
    expected = isinstance(error, (ValueError, OSError)) or type(error).__module__.startswith("face_mtl")
    if not text or not expected:
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    text = re.sub(r"\s+", " ", text)
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."


def image_record(path: str, faces: Sequence["Face"]) -> Record:
    return {"image": path, "faces": [face.to_dict() for face in faces]}


def error_record(key: str, path: str, error: BaseException) -> Record:
    return {key: path, "error": one_line_reason(error, path)}


Loader = Callable[[str], np.ndarray]


def load_or_error(path: str, loader: Loader = load_image) -> np.ndarray | BaseException:
    """``loader(path)``, or the error that stopped it: any unreadable file becomes an error record."""
    try:
        return loader(path)
    except Exception as error:
        return error


def analyze_images(analyzer: "FaceAnalyzer", images: Sequence[np.ndarray]) -> list[list["Face"]]:
    """Kept for old callers: ``analyzer.analyze_batch(images)``."""
    return analyzer.analyze_batch(images)


def analyze_loaded(
    analyzer: "FaceAnalyzer", items: Sequence[tuple[str, np.ndarray | BaseException]]
) -> list[Record]:
    """Records for (path, decoded image or the error that stopped decoding), in order.

    One batch for all images; if the batch fails, each image is analysed alone so that only
    the image at fault becomes an error record.
    """
    good = [(i, image) for i, (_, image) in enumerate(items) if isinstance(image, np.ndarray)]
    results: dict[int, list[Face] | BaseException] = {}
    try:
        for (i, _), faces in zip(good, analyzer.analyze_batch([image for _, image in good])):
            results[i] = faces
    except Exception:
        for i, image in good:
            try:
                results[i] = analyzer.analyze(image)
            except Exception as error:
                results[i] = error
    records = []
    for i, (path, loaded) in enumerate(items):
        outcome = results.get(i, loaded)
        if isinstance(outcome, BaseException):
            records.append(error_record("image", path, outcome))
        else:
            records.append(image_record(path, outcome))
    return records

