"""Video analysis on real clips: decoding, tracking, summaries, annotated output, CLI and app.

Clips come from ../shared/data/videos (never copied into the repository) and the generated
examples/two_people.mp4. Sampling rates are low to keep the file fast; every clip is
analysed once per module (``analyzed``).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from face_mtl.errors import LimitExceededError
from face_mtl.limits import Limits
from face_mtl.video import (
    VideoError,
    VideoResult,
    analyze_video,
    probe_video,
    read_frames,
    write_annotated_video,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
VIDEOS = ROOT.parent / "shared" / "data" / "videos"
TWO_PEOPLE = EXAMPLES / "two_people.mp4"
TEST_FPS = 2.0

needs_videos = pytest.mark.skipif(not VIDEOS.is_dir(), reason=f"shared clips not found at {VIDEOS}")


@pytest.fixture(scope="module")
def analyzer():
    from face_mtl import FaceAnalyzer

    return FaceAnalyzer(device="cpu")


@pytest.fixture(scope="module")
def analyzed(analyzer):
    """analyzed(path, fps) -> VideoResult, each clip analysed once per module."""
    cache: dict[tuple[str, float], VideoResult] = {}

    def get(path: Path, fps: float = TEST_FPS) -> VideoResult:
        key = (str(path), fps)
        if key not in cache:
            cache[key] = analyze_video(path, analyzer, fps=fps, progress=lambda done, total: None)
        return cache[key]

    return get


def _ffmpeg_info(path: Path) -> str:
    from face_mtl.video import _ffmpeg

    return subprocess.run([_ffmpeg(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr


def _check_schema(result: VideoResult) -> None:
    data = json.loads(json.dumps(result.to_dict()))
    assert set(data) == {"duration", "fps", "tracks", "summary"}
    assert data["fps"] == pytest.approx(result.fps, abs=1e-3)
    for track in data["tracks"]:
        assert set(track) == {"id", "frames", "summary"}
        times = [frame["t"] for frame in track["frames"]]
        assert times == sorted(times) and len(set(times)) == len(times)
        for frame in track["frames"]:
            assert set(frame) == {"t", "box", "emotions"}
            x1, y1, x2, y2 = frame["box"]
            assert 0 <= x1 < x2 <= result.width and 0 <= y1 < y2 <= result.height
            assert sum(frame["emotions"].values()) == pytest.approx(1.0, abs=1e-3)
        summary = track["summary"]
        assert summary["first_seen"] == times[0] and summary["last_seen"] == times[-1]
        assert sum(summary["emotion_share"].values()) == pytest.approx(1.0, abs=1e-3)
        assert summary["dominant_emotion"] == max(summary["emotion_share"], key=summary["emotion_share"].get)
        assert summary["video_emotion"] == max(summary["emotion_mean"], key=summary["emotion_mean"].get)
        assert summary["gender"] in summary["genders"] and summary["ethnicity"] in summary["ethnicities"]
        assert 0 <= summary["age"] <= 100


# ---------------------------------------------------------------------------- real clips


@needs_videos
def test_single_face_is_one_track(analyzed):
    result = analyzed(VIDEOS / "single_face.mp4")
    assert result.fps == TEST_FPS and result.frames == 5  # 2.4 s at 2 fps: 0, 0.5 ... 2.0 s
    assert len(result.tracks) == 1
    track = result.tracks[0]
    assert track.summary["first_seen"] == 0.0 and track.summary["last_seen"] >= 1.5
    _check_schema(result)
    assert "1 person" in result.describe() and "Person 1" in result.describe()


@needs_videos
def test_no_face_gives_no_tracks_and_says_so(analyzed):
    result = analyzed(VIDEOS / "no_face.mp4")
    assert result.tracks == ()
    assert result.summary["people"] == 0 and result.summary["message"] == "no faces found"
    assert result.describe().endswith("no faces found")
    assert result.to_dict()["tracks"] == []


@needs_videos
def test_face_that_leaves_mid_clip(analyzed):
    # HEVC in a .mov, audio starting later than the video: the face is there for about 2.5 s.
    result = analyzed(VIDEOS / "face_noface.mov")
    assert len(result.tracks) == 1
    summary = result.tracks[0].summary
    assert summary["first_seen"] == 0.0 and 1.5 <= summary["last_seen"] <= 3.5
    assert result.duration > 6


@needs_videos
def test_face_that_arrives_mid_clip(analyzed):
    result = analyzed(VIDEOS / "noface_face.mov")
    assert len(result.tracks) == 1
    summary = result.tracks[0].summary
    assert 3.0 <= summary["first_seen"] <= 5.0 and summary["last_seen"] >= result.duration - 1.0


@needs_videos
def test_crying_then_laughing_shows_in_the_timeline(analyzed, analyzer):
    # One woman: crying until about 6 s, calmer until about 10 s, laughing after that. Her
    # identity embedding drifts with her expression (and her hands), while her box goes on:
    # she is one track from start to end.
    result = analyzed(VIDEOS / "WolfgangLanger_Pexels.mp4", 4.0)
    assert len(result.tracks) == 1
    assert result.tracks[0].summary["first_seen"] < 0.5
    assert result.tracks[0].summary["last_seen"] > result.duration - 1.0
    if not analyzer.config.metrics:
        pytest.skip("bundled weights are the untrained placeholder (config.metrics is empty)")
    times = np.concatenate([t.times for t in result.tracks])
    top = np.concatenate([np.argmax(t.emotions, axis=1) for t in result.tracks])
    assert len(times) >= 0.7 * result.frames
    labels = list(result.labels)

    def share(emotion: str, start: float, end: float) -> float:
        inside = (times >= start) & (times < end)
        return float(np.mean(top[inside] == labels.index(emotion)))

    crying, laughing = (0.0, 6.0), (10.5, result.duration + 1)
    assert share("sadness", *crying) >= share("sadness", *laughing) + 0.15
    assert share("happiness", *laughing) >= share("happiness", *crying) + 0.3


@needs_videos
@pytest.mark.parametrize("name", ["single_face.mp4", "face_noface.mov"])
def test_probe_reads_h264_and_hevc(name):
    info = probe_video(VIDEOS / name)
    assert info.codec in ("h264", "hevc") and info.has_audio
    assert info.duration > 2 and info.fps > 20 and info.width > info.height


# ---------------------------------------------------------------------------- generated clip


def test_two_people_are_two_tracks_that_keep_their_identities(analyzed):
    result = analyzed(TWO_PEOPLE)
    assert len(result.tracks) == 2
    _check_schema(result)
    for track in result.tracks:
        assert len(track.times) == result.frames  # each seen in every sampled frame
    # Eileen Collins glides along the top, Grace Hopper along the bottom; they pass each other
    # mid-clip. A swapped identity would send a track from one band to the other.
    tops = [track.boxes[:, 1] for track in result.tracks]
    assert sorted(np.ptp(top) < 60 for top in tops) == [True, True]
    assert abs(np.median(tops[0]) - np.median(tops[1])) > 120
    directions = sorted(np.sign(track.boxes[-1, 0] - track.boxes[0, 0]) for track in result.tracks)
    assert directions == [-1, 1]
    assert "2 people" in result.describe()


def test_annotated_clip_is_browser_playable_h264(analyzed, tmp_path):
    result = analyzed(TWO_PEOPLE)
    out = write_annotated_video(TWO_PEOPLE, result, tmp_path / "sub" / "annotated.mp4")
    info = _ffmpeg_info(out)
    video = next(line for line in info.splitlines() if "Video:" in line)
    assert "h264" in video and "yuv420p" in video
    width, height = (int(v) for v in re.search(r" (\d+)x(\d+)[ ,]", video).groups())
    assert (width, height) == (640, 360) and width % 2 == 0 and height % 2 == 0
    assert probe_video(out).duration == pytest.approx(4.0, abs=0.2)
    # Boxes are drawn: annotated frames differ from the source where the faces are.
    source = next(read_frames(probe_video(TWO_PEOPLE), 1, (640, 360)))
    drawn = next(read_frames(probe_video(out), 1, (640, 360)))
    assert np.abs(source.astype(int) - drawn.astype(int)).max() > 100


@needs_videos
def test_annotated_clip_keeps_the_audio(analyzed, tmp_path):
    clip = VIDEOS / "single_face.mp4"
    out = write_annotated_video(clip, analyzed(clip), tmp_path / "annotated.mp4")
    assert "Audio: aac" in _ffmpeg_info(out)


def test_other_containers_decode(tmp_path):
    # webm (VP8, as browsers record) and avi (MPEG-4 part 2), made from the example clip.
    from face_mtl.video import _ffmpeg

    for name, codec in (
        ("clip.webm", ["-c:v", "libvpx", "-deadline", "realtime"]),
        ("clip.avi", ["-c:v", "mpeg4"]),
    ):
        path = tmp_path / name
        command = [_ffmpeg(), "-v", "error", "-i", str(TWO_PEOPLE), "-t", "1", "-vf", "scale=320:180", *codec]
        subprocess.run([*command, str(path)], check=True)
        info = probe_video(path)
        frames = list(read_frames(info, 4.0, (info.width, info.height)))
        assert len(frames) == 4 and frames[0].shape == (180, 320, 3)


def test_rotation_metadata_turns_the_frame(tmp_path):
    # Phones store portrait clips as landscape frames plus a display rotation.
    from face_mtl.video import _ffmpeg

    path = tmp_path / "portrait.mp4"
    command = [
        _ffmpeg(),
        "-v",
        "error",
        "-display_rotation",
        "90",
        "-i",
        str(TWO_PEOPLE),
        "-t",
        "1",
        "-c",
        "copy",
    ]
    subprocess.run([*command, str(path)], check=True)
    info = probe_video(path)
    assert (info.width, info.height) == (360, 640)
    frame = next(read_frames(info, 2.0, (info.width, info.height)))
    assert frame.shape == (640, 360, 3)
    # Upright, not squeezed: the background gradient now runs left to right.
    columns = frame.mean(axis=(0, 2))
    assert abs(columns[5] - columns[-5]) > 40


# ---------------------------------------------------------------------------- bad input


class _NoWork:
    """An analyzer that fails if anything asks it to work."""

    config = property(lambda self: pytest.fail("analyzer used"))
    detector = property(lambda self: pytest.fail("detector used"))


def _bad_input(kind: str, folder: Path) -> Path:
    if kind == "text":
        (folder / "notes.mp4").write_text("not a video\n" * 50)
        return folder / "notes.mp4"
    if kind == "empty":
        (folder / "empty.mp4").write_bytes(b"")
        return folder / "empty.mp4"
    return {"missing": folder / "missing.mp4", "folder": folder, "image": EXAMPLES / "astronaut.png"}[kind]


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing", "no such file"),
        ("folder", "is a directory"),
        ("empty", "empty file"),
        ("text", "not a video: a text file"),
        ("image", "still image"),
    ],
)
def test_bad_input_is_a_one_line_video_error(tmp_path, kind, message):
    with pytest.raises(VideoError, match=message) as error:
        analyze_video(_bad_input(kind, tmp_path), _NoWork())
    assert "\n" not in str(error.value)


def test_too_long_clip_is_refused_before_any_work():
    with pytest.raises(LimitExceededError, match=r"lasts 4\.0 s, longer than the 2 s limit"):
        analyze_video(TWO_PEOPLE, _NoWork(), max_duration=2)
    with pytest.raises(LimitExceededError, match=r"lasts 4\.0 s, longer than the 3 s limit"):
        analyze_video(TWO_PEOPLE, _NoWork(), limits=Limits(max_clip_seconds=3))
    with pytest.raises(LimitExceededError, match="60 frames, more than the 50 frame limit"):
        analyze_video(TWO_PEOPLE, _NoWork(), limits=Limits(max_clip_frames=50))
    with pytest.raises(LimitExceededError, match="640x360 pixels, larger than the 600 pixel limit"):
        analyze_video(TWO_PEOPLE, _NoWork(), limits=Limits(max_clip_side=600))


@pytest.mark.parametrize("fps", [0, -1, float("nan")])
def test_bad_sampling_rate_is_refused(fps):
    with pytest.raises(VideoError, match="fps must be a positive number"):
        analyze_video(TWO_PEOPLE, _NoWork(), fps=fps)


# ---------------------------------------------------------------------------- CLI and app


def test_cli_video_json_and_bad_input(capsys, tmp_path):
    from face_mtl.cli import main

    assert main(["video", str(TWO_PEOPLE), "--fps", "1", "--json", "--device", "cpu"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["fps"] == 1 and len(data["tracks"]) == 2
    bad = tmp_path / "bad.mp4"
    bad.write_text("nope")
    assert main(["video", str(bad), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("face-mtl: error:") and "\n" not in err


def test_app_handler_outputs(monkeypatch, analyzed):
    import gradio as gr
    import pandas as pd
    import plotly.graph_objects as go

    from face_mtl.ui import video as ui

    def cached_analysis(path, analyzer, *, limits, progress):
        # The analysis itself is tested above; here only the handler's wiring is.
        assert limits is analyzer.limits
        progress(1, 2)
        progress(2, 2)
        return analyzed(Path(path))

    monkeypatch.setattr(ui, "analyze_video", cached_analysis)
    calls = []
    figure, table, clip, json_path, csv_path = ui.analyze_video_ui(
        str(TWO_PEOPLE), progress=lambda value, desc=None: calls.append(value)
    )
    assert isinstance(figure, go.Figure) and len(figure.data) == 2 * 8
    assert "Person 1: mostly" in figure.layout.annotations[0].text
    assert isinstance(table, pd.DataFrame) and list(table["person"]) == [1, 2]
    assert Path(clip).suffix == ".mp4" and Path(clip).stat().st_size > 0
    assert len(json.loads(Path(json_path).read_text())["tracks"]) == 2
    assert Path(csv_path).read_text().splitlines()[0].startswith("person,t,x1,y1,x2,y2,emotion,")
    assert calls[:3] == [0.0, 0.4, 0.8] and calls == sorted(calls) and max(calls) <= 1.0

    with pytest.raises(gr.Error, match="Add a clip first"):
        ui.analyze_video_ui(None)
    with pytest.raises(gr.Error, match="two_people.mp4: the clip lasts 4.0 s, longer than the 2 s limit") as caught:
        ui.check_clip(str(TWO_PEOPLE), Limits(max_clip_seconds=2))
    assert caught.value.title == "Outside the limits"
    with pytest.raises(gr.Error, match=r"astronaut.png: not a video: a still image \(PNG\)") as caught:
        ui.analyze_video_ui(str(EXAMPLES / "astronaut.png"))
    assert str(EXAMPLES) not in caught.value.message  # no server paths in user messages
