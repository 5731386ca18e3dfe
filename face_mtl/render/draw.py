"""Drawing face boxes and labels on images (photos and video frames).

Everything here takes and returns HxWx3 uint8 RGB numpy arrays and never changes its input.
Text uses PIL's bundled TrueType font (``ImageFont.load_default(size=...)``, pillow >= 10.1),
so drawing works offline and without system fonts.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..types import Face

# One colour per expression (RGB), far apart in hue so neighbouring faces stay distinguishable.
EMOTION_COLORS: dict[str, tuple[int, int, int]] = {
    "anger": (220, 38, 38),
    "contempt": (147, 51, 234),
    "disgust": (101, 163, 13),
    "fear": (234, 88, 12),
    "happiness": (250, 204, 21),
    "neutral": (156, 163, 175),
    "sadness": (37, 99, 235),
    "surprise": (236, 72, 153),
}
FALLBACK_COLOR = (20, 184, 166)  # labels a model might add later (teal)

MIN_FONT = 8  # below this PIL's font is unreadable; longer labels wrap instead
MAX_FONT = 160
FONT_FRACTION = 0.03  # font size as a fraction of sqrt(width * height)


Rect = tuple[int, int, int, int]  # x1, y1, x2, y2, exclusive right/bottom


def emotion_color(emotion: str) -> tuple[int, int, int]:
    """The RGB colour for an emotion label (a fixed fallback for unknown labels)."""
    return EMOTION_COLORS.get(emotion, FALLBACK_COLOR)


def text_color(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on ``background`` (RGB)."""
    r, g, b = background
    # Rec. 601 luma: yellow and grey want black text, blue and red want white.
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 150 else (255, 255, 255)


def default_label(number: int, face: Face) -> str:
    """The short label drawn by default, e.g. "1 happiness 34 female white"."""
    return f"{number} {face.emotion} {face.age:.0f} {face.gender} {face.ethnicity}"


def font_size_for(width: int, height: int) -> int:
    """Label font size in pixels for an image, growing with the image so that text keeps the
    same size relative to the photo however large it is shown."""
    return int(min(MAX_FONT, max(MIN_FONT + 3, round(FONT_FRACTION * math.sqrt(width * height)))))


@functools.lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _text_width(text: str, font: ImageFont.FreeTypeFont) -> int:
    return math.ceil(font.getlength(text))


def _wrap(text: str, font: ImageFont.FreeTypeFont, max_width: int) -> list[str]:
    """Greedy word wrap; a single word wider than ``max_width`` stays on its own line."""
    lines: list[str] = []
    for word in text.split():
        if lines and _text_width(f"{lines[-1]} {word}", font) <= max_width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


@dataclass(frozen=True)
class LabelLayout:
    """A label's text lines, font size and padded block size in pixels."""

    lines: tuple[str, ...]
    size: int
    width: int
    height: int
    padding: int


def _padding(size: int) -> int:
    return max(2, size // 4)


def layout_label(text: str, size: int, max_width: int) -> LabelLayout:
    """Fit ``text`` into ``max_width`` pixels: shrink the font down to MIN_FONT, then wrap.
    A newline in ``text`` always starts a new line."""
    paragraphs = text.split("\n")

    def widest(font: ImageFont.FreeTypeFont) -> int:
        return max(_text_width(p, font) for p in paragraphs)

    while size > MIN_FONT and widest(_font(size)) + 2 * _padding(size) > max_width:
        size = max(MIN_FONT, int(size * 0.85))
    font, padding = _font(size), _padding(size)
    lines = []
    for paragraph in paragraphs:
        if _text_width(paragraph, font) + 2 * padding > max_width:
            lines.extend(_wrap(paragraph, font, max_width - 2 * padding))
        else:
            lines.append(paragraph)
    ascent, descent = font.getmetrics()
    width = min(max_width, max(_text_width(line, font) for line in lines) + 2 * padding)
    return LabelLayout(tuple(lines), size, width, (ascent + descent) * len(lines) + 2 * padding, padding)


def _overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_label(
    box: Rect, label: tuple[int, int], image_size: tuple[int, int], taken: Sequence[Rect] = ()
) -> Rect:
    """Where to put a ``label`` (width, height) for ``box``: above it, else below it, else
    inside its top edge; the first spot that does not cover an already ``taken`` label wins.
    The result always lies inside the image (``image_size`` is width, height)."""
    width, height = image_size
    w, h = min(label[0], width), min(label[1], height)
    x1, y1, x2, y2 = box
    x = min(max(0, x1), max(0, width - w))
    candidates = [y1 - h, y2, y1]
    spots = [(x, min(max(0, y), height - h)) for y in candidates if 0 <= y <= height - h]
    spots.append((x, min(max(0, y1), height - h)))  # nothing fits cleanly: clamp inside the image
    rects = [(sx, sy, sx + w, sy + h) for sx, sy in spots]
    for rect in rects:
        if not any(_overlap(rect, other) for other in taken):
            return rect
    return rects[0]


def draw_faces(image: np.ndarray, faces: Sequence[Face], labels: Sequence[str] | None = None) -> np.ndarray:
    """A copy of ``image`` (HxWx3 uint8 RGB) with a box and a label per face.

    Box and label colours follow each face's emotion (EMOTION_COLORS). ``labels`` default to
    ``default_label`` numbered from 1 in the order of ``faces``. The font scales with the image;
    labels shrink or wrap to fit its width and are kept inside it. Faces without a box (crops)
    are skipped. Returns a new HxWx3 uint8 RGB array of the same size.
    """
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got shape {array.shape} dtype {array.dtype}")
    if labels is not None and len(labels) != len(faces):
        raise ValueError(f"got {len(labels)} labels for {len(faces)} faces")
    height, width = array.shape[:2]
    canvas = Image.fromarray(np.array(array))  # explicit copy: the caller's array stays untouched
    draw = ImageDraw.Draw(canvas)
    size = font_size_for(width, height)
    line = max(1, round(size / 8))
    texts = list(labels) if labels is not None else [default_label(i, f) for i, f in enumerate(faces, 1)]

    boxes: list[tuple[Rect, tuple[int, int, int], str]] = []
    for face, text in zip(faces, texts, strict=True):
        if face.box is None:
            continue
        x1, y1, x2, y2 = (round(v) for v in face.box)
        rect = (max(0, x1), max(0, y1), min(width - 1, x2), min(height - 1, y2))
        color = emotion_color(face.emotion)
        draw.rectangle(rect, outline=color, width=line)
        boxes.append((rect, color, text))

    # Labels after all boxes, so no box line crosses a label.
    taken: list[Rect] = []
    for rect, color, text in boxes:
        layout = layout_label(text, size, width)
        spot = place_label(rect, (layout.width, layout.height), (width, height), taken)
        taken.append(spot)
        draw.rectangle((spot[0], spot[1], spot[2] - 1, spot[3] - 1), fill=color)
        font = _font(layout.size)
        ascent, descent = font.getmetrics()
        for i, text_line in enumerate(layout.lines):
            position = (spot[0] + layout.padding, spot[1] + layout.padding + i * (ascent + descent))
            draw.text(position, text_line, font=font, fill=text_color(color))
    return np.asarray(canvas).copy()
