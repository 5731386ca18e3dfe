"""Video analysis: sample a clip's frames, analyse every face in large batches, track people.

Decoding runs ffmpeg (the imageio-ffmpeg binary that moviepy also uses) in a subprocess whose
``fps`` filter keeps the frame shown at each sample time, so only sampled frames are
converted to RGB and cross the pipe. Frames are detected in groups (``detect_batch``) and
the faces of a whole group go through the network in one ``predict_crops`` call, on the
same tight crops as photos. Tracking and smoothing are the pure functions of ``track.py``.
"""

from __future__ import annotations

import math
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .crop import crop_face
from .track import Sighting, TrackSettings, keep_long_tracks, link_sightings, smooth_over_time
from .types import Detection, Face

if TYPE_CHECKING:
    from .analyzer import FaceAnalyzer

# Measured with bench/bench_video.py on this project's 2-core CPU: one sampled frame costs
# about 0.13 s of one core at 640x360 and 0.2-0.25 s at 960x540 and above (MTCNN dominates),
# so 4 frames a second analyse a 20 s clip in 0.5-1x its duration even on one busy core.
# Expressions last a second or more, so 4 samples a second still catch each one several times.
DEFAULT_FPS = 4.0
# Clips longer than this are refused before any work (the app's and CLI's limit).
DEFAULT_MAX_DURATION = 60.0
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


class VideoError(Exception):
    """Input that cannot be analysed as a video; the message is one line naming the problem."""


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


@dataclass(frozen=True, eq=False)
class TrackResult:
    """One person over time.

    ``times``: (N,) seconds of the sampled frames where they were seen. ``boxes``: (N, 4)
    (x1, y1, x2, y2) in pixels of the clip. ``emotions``: (N, K) probabilities smoothed over
    time (rows sum to 1), ``raw_emotions`` the network's per-frame probabilities, columns in
    the order of ``VideoResult.labels``. ``summary``: see ``summarize_track``.
    """

    id: int
    times: np.ndarray
    boxes: np.ndarray
    emotions: np.ndarray
    raw_emotions: np.ndarray
    summary: dict[str, Any]

    def frames(self, labels: Sequence[str]) -> list[dict[str, Any]]:
        return [
            {
                "t": round(float(t), 3),
                "box": [round(float(v), 1) for v in box],
                "emotions": {label: round(float(p), 4) for label, p in zip(labels, row)},
            }
            for t, box, row in zip(self.times, self.boxes, self.emotions)
        ]


@dataclass(frozen=True, eq=False)
class VideoResult:
    """Everything found in a clip: one ``TrackResult`` per person, in order of appearance.

    ``fps`` is the sampling rate actually used (frames analysed per second of clip),
    ``frames`` the number of sampled frames, ``faces`` the number of faces analysed (tracks
    too short to keep included), ``timings`` seconds spent per stage.
    """

    path: str
    duration: float
    fps: float
    width: int
    height: int
    labels: tuple[str, ...]
    frames: int
    faces: int
    tracks: tuple[TrackResult, ...]
    summary: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable: duration (s), fps (sampling rate), tracks (timelines and
        per-person summaries) and the clip's summary."""
        return {
            "duration": round(self.duration, 3),
            "fps": round(self.fps, 3),
            "tracks": [
                {"id": track.id, "frames": track.frames(self.labels), "summary": track.summary}
                for track in self.tracks
            ],
            "summary": self.summary,
        }

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per person per sampled frame (for CSV): smoothed probabilities."""
        rows = []
        for track in self.tracks:
            for t, box, row in zip(track.times, track.boxes, track.emotions):
                entry: dict[str, Any] = {"person": track.id, "t": round(float(t), 3)}
                entry.update({k: round(float(v), 1) for k, v in zip(("x1", "y1", "x2", "y2"), box)})
                entry["emotion"] = self.labels[int(np.argmax(row))]
                entry.update({label: round(float(p), 4) for label, p in zip(self.labels, row)})
                rows.append(entry)
        return rows

    def describe(self) -> str:
        """Readable text: the clip, then one paragraph per person."""
        head = (
            f"{Path(self.path).name}: {self.duration:.1f} s, {self.width}x{self.height}, "
            f"sampled at {self.fps:g} fps ({self.frames} frames)"
        )
        if not self.tracks:
            return f"{head}: {self.summary['message']}"
        people = len(self.tracks)
        lines = [f"{head}: {people} {'person' if people == 1 else 'people'}"]
        for track in self.tracks:
            s = track.summary
            shares = ", ".join(
                f"{label} {share:.0%}" for label, share in s["emotion_share"].items() if share >= 0.005
            )
            lines += [
                "",
                f"Person {track.id}: seen {s['first_seen']:.1f}-{s['last_seen']:.1f} s ({s['frames']} frames)",
                f"  mostly {s['dominant_emotion']} ({s['emotion_share'][s['dominant_emotion']]:.0%} of the time); "
                f"clip-level emotion {s['video_emotion']} "
                f"(mean {s['emotion_mean'][s['video_emotion']]:.2f} ± {s['emotion_std'][s['video_emotion']]:.2f})",
                f"  time share: {shares}",
                f"  age {s['age']:.0f}, {s['gender']} ({s['genders'][s['gender']]:.2f}), "
                f"{s['ethnicity']} ({s['ethnicities'][s['ethnicity']]:.2f})",
            ]
        return "\n".join(lines)


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


def _ffmpeg_report(path: Path, decode: bool) -> str:
    """What ``ffmpeg -i`` says about a file (stderr text); ``decode`` reads it to the end."""
    command = [_ffmpeg(), "-hide_banner", "-nostdin", "-i", str(path)] + (
        ["-f", "null", "-"] if decode else []
    )
    return subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace"
    ).stderr


def _parse_report(report: str, path: Path, decode: bool) -> dict[str, Any]:
    from moviepy.video.io.ffmpeg_reader import FFmpegInfosParser

    return FFmpegInfosParser(report, str(path), decode_file=decode).parse()


def probe_video(path: str | Path) -> VideoInfo:
    """Read a clip's header (ffmpeg reads the whole file only when the header has no
    duration). Raises VideoError for anything that is not a video of at least two frames:
    missing or empty files, images, audio, text."""
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: no such file")
    if path.is_dir():
        raise VideoError(f"{path}: is a directory, not a video")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file")
    report = _ffmpeg_report(path, decode=False)
    try:
        infos = _parse_report(report, path, decode=False)
    except _PARSE_ERRORS:
        try:
            # Streamed webm (browser recordings) may carry no duration: read the file for it.
            infos = _parse_report(_ffmpeg_report(path, decode=True), path, decode=True)
        except _PARSE_ERRORS:
            raise VideoError(f"{path}: not a video file ffmpeg can read") from None
    if not infos.get("video_found"):
        raise VideoError(f"{path}: no video stream (not a video file)")
    size = infos.get("video_size") or [0, 0]
    duration = float(infos.get("duration") or 0.0)
    if duration <= 0 or not all(size):
        raise VideoError(f"{path}: no video frames")
    if int(infos.get("video_n_frames") or 0) <= 1:
        raise VideoError(f"{path}: a single image, not a video")
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
    )


def check_duration(info: VideoInfo, max_duration: float | None) -> None:
    """Raise VideoError when the clip is longer than ``max_duration`` seconds (None: no limit)."""
    if max_duration is not None and info.duration > max_duration:
        raise VideoError(
            f"{Path(info.path).name}: the clip lasts {info.duration:.1f} s, longer than the "
            f"{max_duration:g} s limit; trim it first"
        )


def sampling_rate(fps: float | None, info: VideoInfo) -> float:
    """Frames per second to analyse: ``fps`` (default DEFAULT_FPS), never above the clip's own."""
    rate = DEFAULT_FPS if fps is None else float(fps)
    if not math.isfinite(rate) or rate <= 0:
        raise VideoError(f"fps must be a positive number, got {fps}")
    return min(rate, info.fps) if info.fps > 0 else rate


def fit_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled to fit ``max_side`` and rounded to even numbers (H.264, yuv420p)."""
    scale = min(1.0, max_side / max(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


# ---------------------------------------------------------------------------- decoding


def read_frames(info: VideoInfo, fps: float | None, size: tuple[int, int]) -> Iterator[np.ndarray]:
    """Yield HxWx3 uint8 RGB frames of ``size`` (width, height): the frame shown at each time
    k / ``fps`` seconds (every frame when ``fps`` is None). Raises VideoError when ffmpeg
    cannot decode the stream, or when it yields no frame at all."""
    width, height = size
    filters = ([f"fps={fps:.6g}"] if fps else []) + [f"scale={width}:{height}:flags=area"]
    command = [
        _ffmpeg(), "-nostdin", "-v", "error", "-i", info.path, "-map", "0:v:0", "-an", "-sn", "-dn",
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
            raise VideoError(f"{Path(info.path).name}: cannot decode the {info.codec} video ({reason})")


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
    max_duration: float | None = DEFAULT_MAX_DURATION,
    tracking: TrackSettings | None = None,
    chunk_frames: int = CHUNK_FRAMES,
    progress: ProgressCallback | None = None,
) -> VideoResult:
    """Track every person in a clip and time their emotions.

    ``fps``: frames analysed per second of clip (default DEFAULT_FPS, capped at the clip's
    rate). ``smoothing``: seconds of the centred moving average over each person's emotion
    probabilities (0: none). ``max_duration``: longer clips raise VideoError before any work
    (None: no limit). ``progress(done, total)`` is called after each group of frames, in
    sampled frames (total is an estimate from the duration); without it a tqdm bar shows on
    terminals. Raises VideoError for input that is not a readable video.
    """
    info = probe_video(path)
    check_duration(info, max_duration)
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
    detections = analyzer.detector.detect_batch(frames)
    now = time.perf_counter()
    timings["detect_s"] += now - clock
    size = analyzer.config.input_size
    crops = [crop_face(frame, d.box, size) for frame, found in zip(frames, detections) for d in found]
    faces = iter(analyzer.predict_crops(crops) if crops else [])
    timings["predict_s"] += time.perf_counter() - now
    return [[(d, next(faces)) for d in found] for found in detections]


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
    Raises VideoError when the clip cannot be read or written."""
    from .render.video import annotate_frame

    info = probe_video(path)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    size = fit_size(info.width, info.height, ANNOTATED_MAX_SIDE)
    rate = min(info.fps, ANNOTATED_MAX_FPS) if info.fps > 0 else ANNOTATED_MAX_FPS
    scale = size[0] / info.width
    command = [
        _ffmpeg(), "-nostdin", "-y", "-v", "error",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{size[0]}x{size[1]}", "-r", f"{rate:.6g}", "-i", "-",
        "-i", info.path, "-map", "0:v:0", "-map", "1:a:0?",  # "?": clips without audio too
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
            raise VideoError(f"{out_path}: cannot write the annotated video ({reason})")
    return out_path
