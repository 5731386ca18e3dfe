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
from ..errors import FaceMTLInputError
from ..limits import Limits
from ..render.video import people_table, results_csv, timeline_figure
from ..video import VideoInfo, analyze_video, check_limits, probe_video, write_annotated_video
from . import FACE_HINT, fresh_export_folder, input_error, uploaded_file

NO_VIDEO_MESSAGE = "Add a clip first: upload one or record one with the webcam."
NO_FACE_MESSAGE = f"No face found in this clip. {FACE_HINT}, and visible for at least half a second."

VideoOutputs = tuple[go.Figure, pd.DataFrame, str | None, str | None, str | None]


def check_clip(upload: str | dict | None, limits: Limits | None = None) -> VideoInfo:
    """The uploaded clip's header, read before any work. gr.Error with face_mtl's own message,
    naming the user's file, when there is no clip, it is not a video face_mtl reads, or it is
    outside ``limits`` (default: the process's)."""
    found = uploaded_file(upload)
    if found is None:
        raise gr.Error(NO_VIDEO_MESSAGE, title="No clip", print_exception=False)
    path, name = found
    try:
        info = probe_video(path, limits)
        check_limits(info, limits)
    except FaceMTLInputError as error:
        raise input_error(error, name) from None
    return info


def make_analyze_video(analyzer: FaceAnalyzer) -> Callable[..., VideoOutputs]:
    """The Video tab's handler (API name ``analyze_video``) bound to a loaded ``analyzer``,
    whose limits it applies."""

    def analyze_clip(video_path: str | None, progress=gr.Progress()) -> VideoOutputs:
        """Track every person in a clip and time their facial expressions.

        Args:
            video_path: path of a video file (mp4, mov, webm, avi...), at most 60 s long
                (the server's clip limits, FACE_MTL_MAX_CLIP_*).

        Returns:
            Plotly timeline (emotion probabilities over time, one subplot per person), table
            with one row per person, annotated H.264 mp4, JSON and CSV result files.
        """
        check_clip(video_path, analyzer.limits)
        progress(0.0, desc="Finding faces")

        def report(done: int, total: int) -> None:
            # Analysis is most of the work; the annotated clip gets the last fifth of the bar.
            progress(0.8 * done / total, desc=f"Finding faces ({done}/{total} frames)")

        try:
            result = analyze_video(video_path, analyzer, limits=analyzer.limits, progress=report)
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
        except FaceMTLInputError as error:  # e.g. a stream ffmpeg cannot decode past its header
            raise input_error(error, Path(video_path).name) from None
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
