"""Inputs -> paths: folders, globs, files and lists of them, each file once, in a stable order."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv"})
# A file with one of these suffixes given as an input is a list of inputs, one per line.
LIST_EXTENSIONS = frozenset({".txt", ".lst"})


def _has_glob(text: str) -> bool:
    return any(char in text for char in "*?[")


def _walk(top: str, extensions: frozenset[str]) -> Iterator[str]:
    """Files under ``top`` with one of ``extensions`` (any case), sorted, hidden ones skipped."""
    for folder, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in extensions:
                yield os.path.join(folder, name)


def _expand(entry: str, extensions: frozenset[str], lists: bool) -> Iterator[str]:
    if os.path.isdir(entry):
        yield from _walk(entry, extensions)
    elif lists and os.path.isfile(entry) and os.path.splitext(entry)[1].lower() in LIST_EXTENSIONS:
        with open(entry, encoding="utf-8") as listing:
            for line in listing:
                line = line.strip()
                if line and not line.startswith("#"):
                    yield from _expand(line, extensions, lists=False)
    elif os.path.exists(entry) or not _has_glob(entry):
        # An explicit file is analysed whatever its name; a missing one becomes an error record.
        yield entry
    else:
        matches = sorted(glob.glob(entry, recursive=True))
        if not matches:
            yield entry  # an error record: "no such file"
        for match in matches:
            if os.path.isdir(match):
                yield from _walk(match, extensions)
            elif os.path.splitext(match)[1].lower() in extensions:
                yield match


def discover(inputs: Iterable[str | Path], extensions: frozenset[str] = IMAGE_EXTENSIONS) -> list[str]:
    """The files to analyse, each once, in a stable order.

    Each input is a folder (walked recursively for files with one of ``extensions``, any
    case, hidden files skipped), a glob (``photos/**/*.jpg``, expanded with ``**``), a file
    (kept whatever its name) or a ``.txt``/``.lst`` list of such inputs, one per line (blank
    lines and ``#`` comments skipped). Paths keep the form they were given in (relative
    stays relative). Inputs that do not exist are kept, to become error records.
    """
    seen: dict[str, None] = {}
    for item in inputs:
        for path in _expand(os.fspath(item), extensions, lists=True):
            seen.setdefault(path, None)
    return list(seen)
