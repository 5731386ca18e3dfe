"""Clips: one record per clip (``face_mtl.video.analyze_video``), written as they come."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .discover import VIDEO_EXTENSIONS, discover
from .engines.base import Summary, progress_bar, write_records
from .formats import output_format, pending_inputs
from .layouts import VideoLayout
from .records import Record, error_record

if TYPE_CHECKING:
    from ..analyzer import FaceAnalyzer


def analyze_clips(
    paths: Iterable[str | Path] | str | Path, analyzer: "FaceAnalyzer", **video_options: Any
) -> Iterator[Record]:
    """Analyse every clip of files, folders (recursive) and globs: one record per clip.

    Yields ``{"video": path, **analyze_video(...).to_dict()}`` or ``{"video": path, "error":
    "one-line reason"}``. ``video_options`` go to ``face_mtl.video.analyze_video`` (fps,
    smoothing, max_duration, ...).
    """
    from ..video import analyze_video

    if isinstance(paths, (str, Path)):
        paths = [paths]
    for path in discover(paths, VIDEO_EXTENSIONS):
        try:
            # A no-op progress callback: the caller shows progress over clips, not frames.
            result = analyze_video(path, analyzer, progress=lambda done, total: None, **video_options)
        except Exception as error:
            yield error_record("video", path, error)
        else:
            yield {"video": path, **result.to_dict()}


def run_clips(
    paths: Sequence[str],
    out: Path,
    analyzer: "FaceAnalyzer",
    *,
    resume: bool = False,
    progress: bool = True,
    **video_options: Any,
) -> Summary:
    """Analyse clips (already discovered) into ``out``: one record per clip."""
    output_format(out)
    todo, skipped = pending_inputs(paths, out, "video", resume)
    with progress_bar(len(todo), "clips", progress) as advance:
        summary = write_records(
            analyze_clips(todo, analyzer, **video_options) if todo else iter(()),
            out, VideoLayout.for_config(analyzer.config), append=resume, progress=advance,
        )  # fmt: skip
    summary.skipped = skipped
    return summary

