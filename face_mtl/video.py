"""Video analysis: sample a clip's frames, analyse every face in large batches, track people.

Decoding runs ffmpeg (the imageio-ffmpeg binary that moviepy also uses) in a subprocess whose
``fps`` filter keeps the frame shown at each sample time, so only sampled frames are
converted to RGB and cross the pipe. Frames are detected in groups and the faces of a whole
group go through the network together (``FaceAnalyzer.detect_batch`` and ``analyze_batch``),
on the same tight crops as photos. Tracking and smoothing are the pure functions of ``track.py``.
"""

from __future__ import annotations

import dataclasses
import math
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import LimitExceededError, VideoLoadError
from .formats import CLIP_DEMUXERS, describe_content, is_still_image, read_head
from .limits import Limits, check_clip, check_file_size, current_limits
from .render.video import annotate_frame
from .track import Sighting, TrackSettings, keep_long_tracks, link_sightings, smooth_over_time
from .types import Detection, Face, TrackResult, VideoResult

if TYPE_CHECKING:
    from .analyzer import FaceAnalyzer

# Measured with bench/bench_video.py on this project's 2-core CPU: one sampled frame costs
# about 0.13 s of one core at 640x360 and 0.2-0.25 s at 960x540 and above (MTCNN dominates),
# so 4 frames a second analyse a 20 s clip in 0.5-1x its duration even on one busy core.
# Expressions last a second or more, so 4 samples a second still catch each one several times.
DEFAULT_FPS = 4.0
# The default clip length limit (face_mtl.limits has the one in force).
DEFAULT_MAX_DURATION = Limits().max_clip_seconds
# Seconds of the centred moving average over per-frame emotion probabilities.
DEFAULT_SMOOTHING = 1.0
# Frames per detect_batch call: big enough to batch the network's input, small enough
# (16 frames of 1280x720 RGB = 44 MB) to keep memory flat.
CHUNK_FRAMES = 16
# Frames are decoded at most this large: the detector downsizes to 800 pixels anyway and a
# face crop needs far fewer pixels than a 4K frame holds.
DECODE_MAX_SIDE = 1280
# Annotated clips: at most this frame rate and size, to keep encoding fast and files small.
ANNOTATED_MAX_FPS = 30.0
ANNOTATED_MAX_SIDE = 1280

ProgressCallback = Callable[[int, int], None]


# The name this error had before all input errors became one family (face_mtl.errors).
VideoError = VideoLoadError

__all__ = [
    "TrackResult",
    "VideoError",
    "VideoInfo",
    "VideoLoadError",
    "VideoResult",
    "analyze_video",
    "check_duration",
    "check_limits",
    "probe_video",
    "read_frames",
    "write_annotated_video",
]


@dataclass(frozen=True)
class VideoInfo:
    """What ffmpeg says about a clip. ``width``/``height`` are the displayed size in pixels
    (rotation metadata applied), ``duration`` is in seconds, ``fps`` the native frame rate."""

    path: str
    duration: float
    fps: float
    width: int
    height: int
    codec: str
    has_audio: bool
    frames: int = 0  # duration x fps, as ffmpeg estimates it


# ---------------------------------------------------------------------------- probing


def _ffmpeg() -> str:
    # moviepy's setting: the imageio-ffmpeg binary unless FFMPEG_BINARY says otherwise.
    from moviepy.config import FFMPEG_BINARY

    return FFMPEG_BINARY


def _last_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


# Rotation metadata as ffmpeg prints it: "rotate : 90" (older) or "rotation of -90.00 degrees"
# (display matrix side data, which moviepy's parser does not read).
_ROTATION = re.compile(r"(?:rotation of|rotate\s*:)\s*(-?\d+(?:\.\d+)?)")
_PARSE_ERRORS = (OSError, ValueError, IndexError, KeyError, AttributeError, TypeError)


def _input_arguments(path: str | Path) -> list[str]:
    """ffmpeg's input options for an uploaded file: the local file only (the "file:" protocol,
    so a name like "concat:..." means nothing), opened only by the demuxers we accept."""
    return ["-protocol_whitelist", "file", "-format_whitelist", CLIP_DEMUXERS, "-i", f"file:{Path(path).resolve()}"]


def _ffmpeg_report(path: Path, demux: bool) -> str:
    """What ``ffmpeg -i`` says about a file (stderr text); ``demux`` reads its video packets to
    the end (no decoding), for files whose header gives no duration."""
    command = [_ffmpeg(), "-hide_banner", "-nostdin", *_input_arguments(path)] + (
        ["-map", "0:v:0", "-c", "copy", "-f", "null", "-"] if demux else []
    )
    return subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace"
    ).stderr


def _parse_report(report: str, path: Path, demux: bool) -> dict[str, Any]:
    from moviepy.video.io.ffmpeg_reader import FFmpegInfosParser

    return FFmpegInfosParser(report, str(path), decode_file=demux).parse()


def _not_a_video(path: Path) -> VideoLoadError:
    try:
        kind = describe_content(read_head(path))
    except OSError:
        kind = None
    if is_still_image(kind):
        return VideoLoadError(path, f"not a video: {kind}; analyse it as a photo")
    if kind is None or "video" in kind:
        return VideoLoadError(path, "not a video file that can be read (damaged, incomplete or an unsupported format)")
    return VideoLoadError(path, f"not a video: {kind}")


def probe_video(path: str | Path, limits: Limits | None = None) -> VideoInfo:
    """Read a clip's header (ffmpeg reads the file's packets only when the header has no
    duration). Raises VideoLoadError for anything that is not a video of at least two frames
    (missing or empty files, photos, audio, text, unsupported containers) and
    LimitExceededError for a file larger than ``limits.max_upload_mb`` (default:
    ``current_limits()``). The clip's own limits are ``check_limits``'s."""
    limits = limits or current_limits()
    path = Path(path)
    if not path.exists():
        raise VideoLoadError(path, "no such file")
    if path.is_dir():
        raise VideoLoadError(path, "is a directory, not a video")
    if path.stat().st_size == 0:
        raise VideoLoadError(path, "empty file")
    check_file_size(path, limits)
    report = _ffmpeg_report(path, demux=False)
    if not re.search(r"^Input #0", report, re.MULTILINE):
        raise _not_a_video(path)
    if not re.search(r"^\s*Stream #\S+.*: Video:", report, re.MULTILINE):
        kind = "an audio file" if re.search(r": Audio:", report) else "a file without any video stream"
        raise VideoLoadError(path, f"no video stream: {kind}, not a video")
    try:
        infos = _parse_report(report, path, demux=False)
    except _PARSE_ERRORS:
        try:
            # Streamed webm (browser recordings) may carry no duration: read the packets for it.
            infos = _parse_report(_ffmpeg_report(path, demux=True), path, demux=True)
        except _PARSE_ERRORS:
            infos = {}
    size = infos.get("video_size") or [0, 0]
    duration = float(infos.get("duration") or 0.0)
    if duration <= 0 or not all(size):
        raise VideoLoadError(path, "no video frames: the clip's video stream is empty or cannot be read")
    frames = int(infos.get("video_n_frames") or 0)
    if frames <= 1:
        raise VideoLoadError(path, "a single image, not a video; analyse it as a photo")
    width, height = (int(v) for v in size)
    rotation = _ROTATION.search(report)
    if rotation and round(abs(float(rotation.group(1)))) % 180 == 90:
        width, height = height, width  # ffmpeg turns the frames upright on decode
    return VideoInfo(
        path=str(path),
        duration=duration,
        fps=float(infos.get("video_fps") or 0.0),
        width=width,
        height=height,
        codec=str(infos.get("video_codec_name") or "unknown"),
        has_audio=bool(infos.get("audio_found")),
        frames=frames,
    )


def check_limits(info: VideoInfo, limits: Limits | None = None) -> None:
    """LimitExceededError when the clip is longer, has more frames or larger frames than
    ``limits`` allow (default: ``current_limits()``)."""
    limits = limits or current_limits()
    check_clip(
        info.path, duration=info.duration, frames=info.frames, width=info.width, height=info.height, limits=limits
    )


def check_duration(info: VideoInfo, max_duration: float | None) -> None:
    """LimitExceededError when the clip is longer than ``max_duration`` seconds (None: no limit)."""
    if max_duration is not None and info.duration > max_duration:
        raise LimitExceededError(
            info.path,
            f"the clip lasts {info.duration:.1f} s, longer than the {max_duration:g} s limit; trim it first",
        )


def sampling_rate(fps: float | None, info: VideoInfo) -> float:
    """Frames per second to analyse: ``fps`` (default DEFAULT_FPS), never above the clip's own."""
    rate = DEFAULT_FPS if fps is None else float(fps)
    if not math.isfinite(rate) or rate <= 0:
        raise VideoLoadError(None, f"fps must be a positive number, got {fps}")
    return min(rate, info.fps) if info.fps > 0 else rate


def fit_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled to fit ``max_side`` and rounded to even numbers (H.264, yuv420p)."""
    scale = min(1.0, max_side / max(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


# ---------------------------------------------------------------------------- decoding


def read_frames(info: VideoInfo, fps: float | None, size: tuple[int, int]) -> Iterator[np.ndarray]:
    """Yield HxWx3 uint8 RGB frames of ``size`` (width, height): the frame shown at each time
    k / ``fps`` seconds (every frame when ``fps`` is None). Raises VideoLoadError when ffmpeg
    cannot decode the stream, or when it yields no frame at all."""
    width, height = size
    filters = ([f"fps={fps:.6g}"] if fps else []) + [f"scale={width}:{height}:flags=area"]
    command = [
        _ffmpeg(), "-nostdin", "-v", "error", *_input_arguments(info.path), "-map", "0:v:0", "-an", "-sn", "-dn",
        "-vf", ",".join(filters), "-pix_fmt", "rgb24", "-f", "rawvideo", "-",
    ]  # fmt: skip
    frame_bytes = width * height * 3
    count = 0
    # stderr goes to a file: a pipe nobody reads could fill up and stall ffmpeg.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log)
        try:
            while True:
                buffer = bytearray(frame_bytes)
                view, got = memoryview(buffer), 0
                while got < frame_bytes:
                    n = process.stdout.readinto(view[got:])
                    if not n:
                        break
                    got += n
                if got < frame_bytes:
                    break
                count += 1
                yield np.frombuffer(buffer, dtype=np.uint8).reshape(height, width, 3)
        finally:
            process.stdout.close()
            if process.poll() is None:
                process.kill()
            code = process.wait()
        if count == 0:
            log.seek(0)
            reason = _last_line(log.read().decode("utf-8", errors="replace")) if code else "no frames decoded"
            raise VideoLoadError(info.path, f"cannot decode the {info.codec} video ({reason})")


def _chunks(frames: Iterator[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    chunk: list[np.ndarray] = []
    for frame in frames:
        chunk.append(frame)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _tqdm_progress(total: int) -> tuple[ProgressCallback, Callable[[], None]]:
    from tqdm.auto import tqdm

    # disable=None: a bar on terminals only, nothing in logs or pipes.
    bar = tqdm(total=total, unit="frame", desc="analysing", disable=None, leave=False)

    def update(done: int, _total: int) -> None:
        bar.update(done - bar.n)

    return update, bar.close


# ---------------------------------------------------------------------------- results


def _mean_probabilities(labels: Sequence[str], rows: np.ndarray) -> dict[str, float]:
    return {label: round(float(p), 4) for label, p in zip(labels, rows.mean(axis=0))}


def emotion_statistics(labels: Sequence[str], raw: np.ndarray, smoothed: np.ndarray) -> dict[str, Any]:
    """Clip-level emotion of some (N, K) per-frame probabilities, N >= 1.

    ``emotion_share``: fraction of frames whose smoothed top emotion is each label (time
    share, as frames are evenly spaced); ``dominant_emotion`` the largest share. As in the
    paper (Savchenko 2021, video-level recognition), the clip is described by statistics of
    the frame-level scores: ``emotion_mean`` and ``emotion_std`` of the raw probabilities,
    and ``video_emotion`` is the label of the largest mean.
    """
    counts = np.bincount(np.argmax(smoothed, axis=1), minlength=len(labels))
    share = counts / counts.sum()
    mean, std = raw.mean(axis=0), raw.std(axis=0)
    return {
        "dominant_emotion": labels[int(np.argmax(share))],
        "emotion_share": {label: round(float(s), 4) for label, s in zip(labels, share)},
        "video_emotion": labels[int(np.argmax(mean))],
        "emotion_mean": {label: round(float(m), 4) for label, m in zip(labels, mean)},
        "emotion_std": {label: round(float(s), 4) for label, s in zip(labels, std)},
    }


def summarize_track(
    labels: Sequence[str],
    times: np.ndarray,
    raw: np.ndarray,
    smoothed: np.ndarray,
    ages: np.ndarray,
    genders: tuple[Sequence[str], np.ndarray],
    ethnicities: tuple[Sequence[str], np.ndarray],
) -> dict[str, Any]:
    """Per-person summary: first/last seen (s), frames, emotion statistics, median age (years)
    and the gender and ethnicity of the mean per-frame probabilities (also given)."""
    gender_labels, gender_rows = genders
    ethnicity_labels, ethnicity_rows = ethnicities
    gender_mean = gender_rows.mean(axis=0)
    ethnicity_mean = ethnicity_rows.mean(axis=0)
    return {
        "first_seen": round(float(times[0]), 3),
        "last_seen": round(float(times[-1]), 3),
        "frames": int(len(times)),
        **emotion_statistics(labels, raw, smoothed),
        "age": round(float(np.median(ages)), 1),
        "gender": gender_labels[int(np.argmax(gender_mean))],
        "genders": _mean_probabilities(gender_labels, gender_rows),
        "ethnicity": ethnicity_labels[int(np.argmax(ethnicity_mean))],
        "ethnicities": _mean_probabilities(ethnicity_labels, ethnicity_rows),
    }


def summarize_clip(
    labels: Sequence[str], tracks: Sequence[TrackResult], frames: int, frames_with_faces: int, faces: int
) -> dict[str, Any]:
    """The whole clip: counts, and the emotion statistics of every kept person's frames."""
    summary: dict[str, Any] = {
        "people": len(tracks),
        "frames_sampled": frames,
        "frames_with_faces": frames_with_faces,
        "faces_analyzed": faces,
    }
    if not tracks:
        summary["message"] = "no faces found" if faces == 0 else "no face stayed long enough to follow"
        return summary
    raw = np.concatenate([t.raw_emotions for t in tracks])
    smoothed = np.concatenate([t.emotions for t in tracks])
    return {**summary, **emotion_statistics(labels, raw, smoothed)}


# ---------------------------------------------------------------------------- analysis


def analyze_video(
    path: str | Path,
    analyzer: "FaceAnalyzer",
    fps: float | None = None,
    *,
    smoothing: float = DEFAULT_SMOOTHING,
    max_duration: float | None = None,
    limits: Limits | None = None,
    tracking: TrackSettings | None = None,
    chunk_frames: int = CHUNK_FRAMES,
    progress: ProgressCallback | None = None,
) -> VideoResult:
    """Track every person in a clip and time their emotions.

    ``fps``: frames analysed per second of clip (default DEFAULT_FPS, capped at the clip's
    rate). ``smoothing``: seconds of the centred moving average over each person's emotion
    probabilities (0: none). ``limits``: clips longer, with more frames or larger frames than
    these raise LimitExceededError before any work (default: the analyzer's, else
    ``current_limits()``);
    ``max_duration`` (seconds) replaces their ``max_clip_seconds`` (``math.inf``: no limit).
    ``progress(done, total)`` is called after each group of frames, in sampled frames (total
    is an estimate from the duration); without it a tqdm bar shows on terminals. Raises
    VideoLoadError for input that is not a readable video.
    """
    limits = limits or getattr(analyzer, "limits", None) or current_limits()
    if max_duration is not None:
        limits = dataclasses.replace(limits, max_clip_seconds=max_duration)
    info = probe_video(path, limits)
    check_limits(info, limits)
    rate = sampling_rate(fps, info)
    tracking = tracking or TrackSettings()
    size = fit_size(info.width, info.height, DECODE_MAX_SIDE)
    to_clip = np.array([info.width / size[0], info.height / size[1]] * 2)  # decoded -> clip pixels
    total = max(1, math.ceil(info.duration * rate - 1e-6))
    close: Callable[[], None] | None = None
    if progress is None:
        progress, close = _tqdm_progress(total)

    sightings: list[list[Sighting]] = []
    predictions: list[Face] = []
    timings = {"decode_s": 0.0, "detect_s": 0.0, "predict_s": 0.0}
    started = clock = time.perf_counter()
    try:
        for chunk in _chunks(read_frames(info, rate, size), chunk_frames):
            timings["decode_s"] += time.perf_counter() - clock
            for found in _analyze_frames(analyzer, chunk, timings):
                frame, here = len(sightings), []
                for detection, face in found:
                    box = tuple(float(v) for v in np.asarray(detection.box) * to_clip)
                    here.append(Sighting(frame, frame / rate, box, face.embedding, len(predictions)))
                    predictions.append(face)
                sightings.append(here)
            progress(min(len(sightings), total), total)
            clock = time.perf_counter()
    finally:
        if close is not None:
            close()
    timings["total_s"] = time.perf_counter() - started
    return _build_result(info, rate, analyzer, sightings, predictions, smoothing, tracking, timings)


def _analyze_frames(
    analyzer: "FaceAnalyzer", frames: Sequence[np.ndarray], timings: dict[str, float]
) -> list[list[tuple[Detection, Face]]]:
    """Per frame, its detections with their Faces: one detector batch for all the frames,
    then one network batch for all their faces (tight crops, as for photos)."""
    clock = time.perf_counter()
    detections = analyzer.detect_batch(frames)
    now = time.perf_counter()
    timings["detect_s"] += now - clock
    # Detected and analysed in two facade calls, so that the two timings stay apart.
    faces = analyzer.analyze_batch(frames, detections)
    timings["predict_s"] += time.perf_counter() - now
    return [list(zip(found, here)) for found, here in zip(detections, faces)]


def _build_result(info, rate, analyzer, sightings, predictions, smoothing, tracking, timings) -> VideoResult:
    config = analyzer.config
    labels = tuple(config.emotions)
    kept = keep_long_tracks(link_sightings(sightings, tracking), rate, tracking)
    tracks = []
    for number, track in enumerate(kept, start=1):
        faces = [predictions[s.index] for s in track]
        times = np.array([s.t for s in track])
        raw = np.array([[f.emotions[k] for k in labels] for f in faces])
        smoothed = smooth_over_time(times, raw, smoothing)
        summary = summarize_track(
            labels,
            times,
            raw,
            smoothed,
            np.array([f.age for f in faces]),
            (config.genders, np.array([[f.genders[k] for k in config.genders] for f in faces])),
            (config.ethnicities, np.array([[f.ethnicities[k] for k in config.ethnicities] for f in faces])),
        )
        tracks.append(
            TrackResult(
                id=number,
                times=times,
                boxes=np.array([s.box for s in track]),
                emotions=smoothed,
                raw_emotions=raw,
                summary=summary,
            )
        )
    frames_with_faces = sum(1 for here in sightings if here)
    return VideoResult(
        path=info.path,
        duration=info.duration,
        fps=rate,
        width=info.width,
        height=info.height,
        labels=labels,
        frames=len(sightings),
        faces=len(predictions),
        tracks=tuple(tracks),
        summary=summarize_clip(labels, tracks, len(sightings), frames_with_faces, len(predictions)),
        timings=timings,
    )


# ---------------------------------------------------------------------------- annotated clip


def write_annotated_video(
    path: str | Path, result: VideoResult, out_path: str | Path, *, progress: ProgressCallback | None = None
) -> Path:
    """Write ``result`` drawn over the clip at ``path``: a browser-playable H.264 mp4
    (yuv420p, even width and height, at most ANNOTATED_MAX_FPS and ANNOTATED_MAX_SIDE), with
    each person's box, id and smoothed emotion, and the clip's audio when it has any.
    ``progress(done, total)`` is called every second of clip, in frames. Returns ``out_path``.
    Raises VideoLoadError when the clip cannot be read or written."""
    info = probe_video(path)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    size = fit_size(info.width, info.height, ANNOTATED_MAX_SIDE)
    rate = min(info.fps, ANNOTATED_MAX_FPS) if info.fps > 0 else ANNOTATED_MAX_FPS
    scale = size[0] / info.width
    command = [
        _ffmpeg(), "-nostdin", "-y", "-v", "error",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{size[0]}x{size[1]}", "-r", f"{rate:.6g}", "-i", "-",
        *_input_arguments(info.path), "-map", "0:v:0", "-map", "1:a:0?",  # "?": clips without audio too
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "128k", "-shortest", "-movflags", "+faststart", str(out_path),
    ]  # fmt: skip
    with tempfile.TemporaryFile() as log:
        encoder = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)
        try:
            total = max(1, math.floor(info.duration * rate + 1e-6))
            for index, frame in enumerate(read_frames(info, rate, size)):
                encoder.stdin.write(annotate_frame(frame, result, index / rate, scale).tobytes())
                if progress is not None and index % max(1, round(rate)) == 0:
                    progress(min(index + 1, total), total)
        except BrokenPipeError:
            pass  # the encoder failed: its log says why, below
        finally:
            encoder.stdin.close()
            code = encoder.wait()
        if code != 0:
            log.seek(0)
            reason = _last_line(log.read().decode("utf-8", errors="replace"))
            raise VideoLoadError(out_path, f"cannot write the annotated video ({reason})")
    return out_path
