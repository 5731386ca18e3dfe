"""The exceptions users see for bad input: one family, one line each, naming the input.

Every input that face_mtl cannot or will not analyse raises a ``FaceMTLInputError``. The
library raises it, the command line prints it as one line (exit code 2) and the app shows it
(the HTTP API returns it as ``AppError``), so all three say the same thing.
"""

from __future__ import annotations

from pathlib import Path


class FaceMTLInputError(ValueError):
    """Input that face_mtl refuses. ``source`` names the input (a path as given, or None for
    in-memory data); ``problem`` says what is wrong and, where it helps, what to do.
    ``str(error)`` is "source: problem" on one line."""

    def __init__(self, source: str | Path | None, problem: str) -> None:
        self.source = None if source is None else str(source)
        self.problem = " ".join(str(problem).split())  # one line, whatever the cause said
        super().__init__(self.problem if self.source is None else f"{self.source}: {self.problem}")

    def message_for(self, name: str) -> str:
        """The same message with ``name`` (e.g. an uploaded file's own name) as the source."""
        return f"{name}: {self.problem}"


class ImageLoadError(FaceMTLInputError):
    """Not a photo face_mtl can read: missing, empty, truncated, or not an image format it reads."""


class VideoLoadError(FaceMTLInputError):
    """Not a clip face_mtl can read: no video stream, no frames, or not a video at all."""


class LimitExceededError(FaceMTLInputError):
    """A readable input outside a stated limit (``face_mtl.limits``): too large a file, too many
    pixels, too long a clip, or too small a photo to hold a face."""
