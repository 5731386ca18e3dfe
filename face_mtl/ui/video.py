"""Handler of the Video tab: analyse one clip, return its timeline, table and downloads."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from ..analyzer import FaceAnalyzer
from ..render.video import people_table, results_csv, timeline_figure
from ..video import (
    DEFAULT_MAX_DURATION,
    VideoError,
    analyze_video,
    check_duration,
    probe_video,
    write_annotated_video,
)
from . import FACE_HINT, fresh_export_folder

# The app refuses longer clips before any work: a minute of video is about a minute of CPU.
MAX_VIDEO_SECONDS = DEFAULT_MAX_DURATION

NO_VIDEO_MESSAGE = "Add a clip first: upload one or record one with the webcam."
NO_FACE_MESSAGE = f"No face found in this clip. {FACE_HINT}, and visible for at least half a second."

VideoOutputs = tuple[go.Figure, pd.DataFrame, str | None, str | None, str | None]


def check_clip(video_path: str | None, max_seconds: float | None = None) -> None:
    """gr.Error with a readable message when there is no clip, it is not a readable video, or
    it lasts longer than ``max_seconds`` (default MAX_VIDEO_SECONDS); reads only the header."""
    max_seconds = MAX_VIDEO_SECONDS if max_seconds is None else max_seconds
    if video_path is None or str(video_path) == "":
        raise gr.Error(NO_VIDEO_MESSAGE, title="No clip", print_exception=False)
    name = Path(video_path).name
    try:
        info = probe_video(video_path)
    except VideoError as error:
        message = str(error).replace(str(video_path), name, 1)
        raise gr.Error(
            f"Could not read this file as a video: {message}", title="Not a video", print_exception=False
        ) from None
    try:
        check_duration(info, max_seconds)
    except VideoError:
        raise gr.Error(
            f"This clip lasts {info.duration:.0f} s; the limit is {max_seconds:g} s. "
            "Please trim it and try again.",
            title="Clip too long",
            print_exception=False,
        ) from None


def make_analyze_video(analyzer: FaceAnalyzer) -> Callable[..., VideoOutputs]:
    """The Video tab's handler (API name ``analyze_video``) bound to a loaded ``analyzer``."""

    def analyze_clip(video_path: str | None, progress=gr.Progress()) -> VideoOutputs:
        """Track every person in a clip and time their facial expressions.

        Args:
            video_path: path of a video file (mp4, mov, webm, avi...), at most 60 s long.

        Returns:
            Plotly timeline (emotion probabilities over time, one subplot per person), table
            with one row per person, annotated H.264 mp4, JSON and CSV result files.
        """
        check_clip(video_path)
        progress(0.0, desc="Finding faces")

        def report(done: int, total: int) -> None:
            # Analysis is most of the work; the annotated clip gets the last fifth of the bar.
            progress(0.8 * done / total, desc=f"Finding faces ({done}/{total} frames)")

        try:
            result = analyze_video(video_path, analyzer, max_duration=MAX_VIDEO_SECONDS, progress=report)
            if not result.tracks:
                raise gr.Error(NO_FACE_MESSAGE, title="No face found", print_exception=False)
            folder = fresh_export_folder("video")
            progress(0.8, desc="Drawing the annotated clip")
            annotated = write_annotated_video(
                video_path,
                result,
                folder / "face_mtl_annotated.mp4",
                progress=lambda done, total: progress(
                    0.8 + 0.2 * done / total, desc="Drawing the annotated clip"
                ),
            )
        except VideoError as error:
            message = str(error).replace(str(video_path), Path(video_path).name)
            raise gr.Error(message, title="Video error", print_exception=False) from None
        json_path = folder / "face_mtl_video.json"
        csv_path = folder / "face_mtl_video.csv"
        json_path.write_text(json.dumps(result.to_dict(), indent=1) + "\n", encoding="utf-8")
        csv_path.write_text(results_csv(result), encoding="utf-8")
        return timeline_figure(result), people_table(result), str(annotated), str(json_path), str(csv_path)

    return analyze_clip


@functools.lru_cache(maxsize=1)
def _default_handler() -> Callable[..., VideoOutputs]:
    # FaceAnalyzer caches its model per weights folder, so this shares a loaded model.
    return make_analyze_video(FaceAnalyzer())


def analyze_video_ui(video_path: str | None, progress=gr.Progress()) -> VideoOutputs:
    """``make_analyze_video``'s handler on a default FaceAnalyzer, for scripts and tests (the app
    passes its own analyzer); the clip is checked before the model loads."""
    check_clip(video_path)
    return _default_handler()(video_path, progress)
