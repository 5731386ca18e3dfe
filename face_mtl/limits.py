"""Every input limit in one place, read from the environment once.

The library, the command line and the app apply the same ``Limits`` through the same checks
below, so a file refused by one is refused by all three with the same message. Defaults suit
one CPU process serving a few people; each can be changed with an environment variable
(``ENVIRONMENT``), read the first time ``current_limits()`` is called.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .detect import DEFAULT_MIN_FACE_SIZE
from .errors import LimitExceededError

MIB = 1024 * 1024
# A photo smaller than the detector's smallest face on either side cannot hold a face.
MIN_PHOTO_SIDE = DEFAULT_MIN_FACE_SIZE


@dataclass(frozen=True)
class Limits:
    """Input limits. ``max_upload_mb``: largest photo or clip file (MiB; the app's upload limit
    too). ``max_pixels``: width x height of a photo, checked before decoding (a small PNG can
    decode to gigabytes). ``max_faces``: faces analysed per photo, the largest kept.
    ``max_clip_seconds``, ``max_clip_frames`` (frames in the clip at its own rate, all of which
    ffmpeg decodes) and ``max_clip_side`` (longer side of a frame, pixels) bound a clip's cost
    before any work. ``max_live_seconds`` is how long one live camera session runs (the stream's
    ``time_limit``, seconds) and ``max_live_sessions`` how many run at once; others wait in line.
    ``math.inf`` lifts a limit (not settable from the environment; not for the live ones)."""

    max_upload_mb: float = 25
    max_pixels: float = 50_000_000
    max_faces: int = 50
    max_clip_seconds: float = 60.0
    max_clip_frames: float = 3600  # a minute at 60 fps
    max_clip_side: float = 4096  # 4K (3840x2160) fits
    # One live session costs about one CPU core while it runs, so a 2-core server serves two.
    max_live_seconds: float = 60.0
    max_live_sessions: int = 2

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"{field.name} must be a positive number, got {value!r}")

    @property
    def max_upload_bytes(self) -> int | None:
        """The upload limit in bytes (Gradio's ``max_file_size``); None when lifted."""
        return None if math.isinf(self.max_upload_mb) else int(self.max_upload_mb * MIB)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """Defaults overridden by the variables of ``ENVIRONMENT`` that are set (os.environ by
        default). Raises ValueError naming the variable when a value is not a positive number."""
        environ = os.environ if environ is None else environ
        values: dict[str, float | int] = {}
        for name, variable in ENVIRONMENT.items():
            text = environ.get(variable, "").strip()
            if not text:
                continue
            try:
                number = float(text)
            except ValueError:
                raise ValueError(f"{variable}={text!r}: not a number") from None
            if not (math.isfinite(number) and number > 0):
                raise ValueError(f"{variable}={text!r}: must be a positive number")
            values[name] = int(number) if name in INTEGER_FIELDS else number
        return cls(**values)


# Field -> environment variable; README's limits table lists the same.
ENVIRONMENT = {
    "max_upload_mb": "FACE_MTL_MAX_UPLOAD_MB",
    "max_pixels": "FACE_MTL_MAX_PIXELS",
    "max_faces": "FACE_MTL_MAX_FACES",
    "max_clip_seconds": "FACE_MTL_MAX_CLIP_SECONDS",
    "max_clip_frames": "FACE_MTL_MAX_CLIP_FRAMES",
    "max_clip_side": "FACE_MTL_MAX_CLIP_SIDE",
    "max_live_seconds": "FACE_MTL_MAX_LIVE_SECONDS",
    "max_live_sessions": "FACE_MTL_MAX_LIVE_SESSIONS",
}
INTEGER_FIELDS = ("max_faces", "max_live_sessions")  # counts: "2.0" in the environment means 2


@functools.lru_cache(maxsize=1)
def current_limits() -> Limits:
    """The process's limits: ``Limits.from_environ()``, read once."""
    return Limits.from_environ()


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 10_000 else f"{value:g}"


def check_file_size(path: str | Path, limits: Limits) -> None:
    """LimitExceededError when the file at ``path`` is larger than ``max_upload_mb``."""
    size = Path(path).stat().st_size
    if size > limits.max_upload_mb * MIB:
        raise LimitExceededError(
            path, f"the file is {size / MIB:.1f} MB, larger than the {limits.max_upload_mb:g} MB limit"
        )


def check_photo_size(source: str | Path | None, width: int, height: int, limits: Limits) -> None:
    """LimitExceededError for a photo of more than ``max_pixels`` pixels, or one too small on
    either side (MIN_PHOTO_SIDE) to hold a face."""
    if width * height > limits.max_pixels:
        raise LimitExceededError(
            source,
            f"the photo is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels), more than "
            f"the {limits.max_pixels / 1e6:g} megapixel limit; resize it first",
        )
    if min(width, height) < MIN_PHOTO_SIDE:
        raise LimitExceededError(
            source,
            f"the photo is {width}x{height} pixels, too small to hold a face "
            f"(faces need at least {MIN_PHOTO_SIDE} pixels each way)",
        )


def check_clip(
    source: str | Path | None,
    *,
    duration: float,
    frames: int,
    width: int,
    height: int,
    limits: Limits,
) -> None:
    """LimitExceededError for a clip longer than ``max_clip_seconds`` (seconds), with more than
    ``max_clip_frames`` frames, or with frames larger than ``max_clip_side`` pixels."""
    if duration > limits.max_clip_seconds:
        raise LimitExceededError(
            source,
            f"the clip lasts {duration:.1f} s, longer than the {limits.max_clip_seconds:g} s limit; trim it first",
        )
    if frames > limits.max_clip_frames:
        raise LimitExceededError(
            source,
            f"the clip has {_number(frames)} frames, more than the {_number(limits.max_clip_frames)} "
            "frame limit; lower its frame rate or trim it first",
        )
    if max(width, height) > limits.max_clip_side:
        raise LimitExceededError(
            source,
            f"the clip is {width}x{height} pixels, larger than the {_number(limits.max_clip_side)} pixel "
            "limit on the longer side; scale it down first",
        )
