"""Many inputs in one call: discovery, records, writers, and the engines that run them.

A *record* is one plain dict per input: ``{"image": path, "faces": [Face.to_dict(), ...]}``,
or ``{"image": path, "error": "one-line reason"}`` for a file that cannot be analysed (for
clips, ``{"video": path, ...VideoResult.to_dict()...}`` or ``{"video": path, "error": ...}``).
A bad file is never fatal: it becomes an error record.

Writers turn records into JSONL (one record a line), CSV (one row per face) or Parquet (one
row per image, the record's nesting kept). Engines run the analysis over many files behind
one small interface (``Engine.run``): ``LocalEngine`` in this process, decoding the next
images in threads while the network runs, and the Ray Data engine (``face_mtl.ray_engine``,
imported only when asked for, so Ray stays an optional extra).
"""

from __future__ import annotations

import csv
import glob
import json
import os
import re
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .images import load_image

if TYPE_CHECKING:
    from .analyzer import FaceAnalyzer
    from .config import ModelConfig
    from .types import Face

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv"})
# A file with one of these suffixes given as an input is a list of inputs, one per line.
LIST_EXTENSIONS = frozenset({".txt", ".lst"})
# Output format by file suffix.
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
# Images per detector and network batch: large enough to batch the network's input, small
# enough that the batches in flight (WORKERS) plus the next one being decoded stay within memory.
BATCH_SIZE = 16
# A batch is also closed at this many decoded pixels (about 120 MB of RGB).
BATCH_PIXELS = 40_000_000
DECODE_THREADS = min(4, os.cpu_count() or 1)
# Batches analysed at once by the local engine. Two batches in flight, each computed by
# one thread per core share, ran 200 px photos 1.28x faster on 2 cores than one batch at a
# time on both cores: the detector's many small operations leave cores idle.
WORKERS = min(2, os.cpu_count() or 1)
# Error reasons longer than this are cut: records stay one short line each.
MAX_REASON = 300

Record = dict[str, Any]


class BatchError(Exception):
    """A whole run cannot start (an unknown output format, an engine that is not installed);
    the message is one line. Problems with single files become error records instead."""


# ---------------------------------------------------------------------------- discovery


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


# ---------------------------------------------------------------------------- records


def one_line_reason(error: BaseException, path: str) -> str:
    """``error`` as one short line, without the path the record already names."""
    text = str(error).strip()
    if text.startswith(f"{path}: "):
        text = text[len(path) + 2 :]
    # The project's own errors and bad-input errors read as they are; anything else (a bug,
    # a library failure) keeps its type name, which is most of what says what went wrong.
    expected = isinstance(error, (ValueError, OSError)) or type(error).__module__.startswith("face_mtl")
    if not text or not expected:
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    text = re.sub(r"\s+", " ", text)
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."


def image_record(path: str, faces: Sequence["Face"]) -> Record:
    return {"image": path, "faces": [face.to_dict() for face in faces]}


def error_record(key: str, path: str, error: BaseException) -> Record:
    return {key: path, "error": one_line_reason(error, path)}


def analyze_images(analyzer: "FaceAnalyzer", images: Sequence[np.ndarray]) -> list[list["Face"]]:
    """Faces of many HxWx3 uint8 RGB images, as ``analyzer.analyze`` gives them one by one.

    Images of the same size share one detector call, and the faces of all images go
    through the network together (the same tight crops as ``analyze``).
    """
    from .crop import crop_face

    by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for index, image in enumerate(images):
        by_shape[image.shape].append(index)
    detections: list[list] = [[] for _ in images]
    for indices in by_shape.values():
        found = analyzer.detector.detect_batch([images[i] for i in indices])
        for i, here in zip(indices, found):
            detections[i] = here
    size = analyzer.config.input_size
    crops = [crop_face(image, d.box, size) for image, here in zip(images, detections) for d in here]
    faces = iter(analyzer.predict_crops(crops) if crops else [])
    return [
        [replace(next(faces), box=d.box, score=d.score, landmarks=d.landmarks) for d in here]
        for here in detections
    ]


def analyze_loaded(
    analyzer: "FaceAnalyzer", items: Sequence[tuple[str, np.ndarray | BaseException]]
) -> list[Record]:
    """Records for (path, decoded image or the error that stopped decoding), in order.

    One batch for all images; if the batch fails, each image is analysed alone so that only
    the image at fault becomes an error record.
    """
    good = [(i, image) for i, (_, image) in enumerate(items) if isinstance(image, np.ndarray)]
    results: dict[int, list[Face] | BaseException] = {}
    try:
        for (i, _), faces in zip(good, analyze_images(analyzer, [image for _, image in good])):
            results[i] = faces
    except Exception:
        for i, image in good:
            try:
                results[i] = analyzer.analyze(image)
            except Exception as error:
                results[i] = error
    records = []
    for i, (path, loaded) in enumerate(items):
        outcome = results.get(i, loaded)
        if isinstance(outcome, BaseException):
            records.append(error_record("image", path, outcome))
        else:
            records.append(image_record(path, outcome))
    return records


Loader = Callable[[str], np.ndarray]


def _loading(loader: Loader) -> Callable[[str], np.ndarray | BaseException]:
    def load(path: str) -> np.ndarray | BaseException:
        try:
            return loader(path)
        except Exception as error:  # any unreadable file becomes an error record
            return error

    return load


_load = _loading(load_image)


_END = object()


def map_ahead(function: Callable[[Any], Any], items: Iterable[Any], pool: ThreadPoolExecutor, ahead: int) -> Iterator[Any]:
    """``function(item)`` for every item, computed in ``pool`` with up to ``ahead`` items in
    flight, yielded in the order of ``items``. Closing the iterator early (``break``, an error
    downstream) cancels the items not started yet."""
    pending: deque[Future] = deque()
    upcoming = iter(items)
    try:
        for item in upcoming:
            pending.append(pool.submit(function, item))
            if len(pending) >= ahead:
                break
        while pending:
            result = pending.popleft().result()
            following = next(upcoming, _END)
            if following is not _END:
                pending.append(pool.submit(function, following))
            yield result
    finally:
        for future in pending:
            future.cancel()


def _batches(
    loaded: Iterator[tuple[str, np.ndarray | BaseException]], size: int, max_pixels: int
) -> Iterator[list[tuple[str, np.ndarray | BaseException]]]:
    batch: list[tuple[str, np.ndarray | BaseException]] = []
    pixels = 0
    for item in loaded:
        batch.append(item)
        if isinstance(item[1], np.ndarray):
            pixels += item[1].shape[0] * item[1].shape[1]
        if len(batch) >= size or pixels >= max_pixels:
            yield batch
            batch, pixels = [], 0
    if batch:
        yield batch


def analyze_files(
    paths: Sequence[str],
    analyzer: "FaceAnalyzer",
    *,
    batch_size: int = BATCH_SIZE,
    decode_threads: int = DECODE_THREADS,
    workers: int = WORKERS,
    loader: Loader = load_image,
) -> Iterator[Record]:
    """One record per path, in order. The next images decode in ``decode_threads`` threads
    while ``workers`` batches are analysed at once; ``loader`` reads one path.

    Without ``torch_threads_shared`` (which ``LocalEngine`` adds) each worker uses all of
    torch's threads; two workers still ran 200 px photos 1.2x faster than one on 2 cores.
    """
    paths = list(paths)
    batch_size, decode_threads, workers = max(1, batch_size), max(1, decode_threads), max(1, workers)
    with (
        ThreadPoolExecutor(decode_threads, thread_name_prefix="face-mtl-decode") as decoding,
        ThreadPoolExecutor(workers, thread_name_prefix="face-mtl-analyze") as analysing,
    ):
        # The workers already hold their batches: decoding one batch ahead keeps them fed.
        images = map_ahead(_loading(loader), paths, decoding, ahead=batch_size + decode_threads)
        batches = _batches(zip(paths, images), batch_size, BATCH_PIXELS)
        analysed = map_ahead(partial(analyze_loaded, analyzer), batches, analysing, ahead=workers)
        with closing(images), closing(analysed):  # stopping early cancels the queued work
            for records in analysed:
                yield from records


def analyze_many(
    paths: Iterable[str | Path] | str | Path, analyzer: "FaceAnalyzer", **options: Any
) -> Iterator[Record]:
    """Analyse every image of files, folders (recursive) and globs: one record per image.

    Yields ``{"image": path, "faces": [Face.to_dict(), ...]}`` (faces largest first) or
    ``{"image": path, "error": "one-line reason"}``, in the order of ``discover(paths)``.
    ``options``: ``batch_size`` (images per network batch), ``decode_threads``, ``workers``
    (batches analysed at once).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    yield from analyze_files(discover(paths), analyzer, **options)


def analyze_clips(
    paths: Iterable[str | Path] | str | Path, analyzer: "FaceAnalyzer", **video_options: Any
) -> Iterator[Record]:
    """Analyse every clip of files, folders (recursive) and globs: one record per clip.

    Yields ``{"video": path, **analyze_video(...).to_dict()}`` or ``{"video": path, "error":
    "one-line reason"}``. ``video_options`` go to ``face_mtl.video.analyze_video`` (fps,
    smoothing, max_duration, ...).
    """
    from .video import analyze_video

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


# ---------------------------------------------------------------------------- layouts


def _prefixed(prefix: str, labels: Sequence[str]) -> list[str]:
    return [f"{prefix}_{label}" for label in labels]


def _json_text(value: Any) -> str:
    return "" if value is None else json.dumps(value, separators=(",", ":"))


@dataclass(frozen=True)
class ImageLayout:
    """How image records become CSV rows and Parquet rows, for one model's labels."""

    emotions: tuple[str, ...]
    genders: tuple[str, ...]
    ethnicities: tuple[str, ...]
    key: str = "image"

    @classmethod
    def for_config(cls, config: "ModelConfig") -> "ImageLayout":
        return cls(tuple(config.emotions), tuple(config.genders), tuple(config.ethnicities))

    @property
    def csv_columns(self) -> list[str]:
        return [
            "image", "error", "face", "x1", "y1", "x2", "y2", "score", "landmarks",
            "emotion", *_prefixed("emotion", self.emotions), "age",
            "gender", *_prefixed("gender", self.genders),
            "ethnicity", *_prefixed("ethnicity", self.ethnicities), "embedding",
        ]  # fmt: skip

    def csv_rows(self, record: Record) -> list[dict[str, Any]]:
        """One row per face (``face`` numbers them 1, 2, ... largest first); an image without
        faces, or with an error, gets one row with only ``image`` and ``error`` filled."""
        faces = record.get("faces") or []
        if not faces:
            return [{"image": record["image"], "error": record.get("error", "")}]
        rows = []
        for number, face in enumerate(faces, start=1):
            box = face["box"] or [None] * 4
            row: dict[str, Any] = {"image": record["image"], "error": "", "face": number}
            row.update(zip(("x1", "y1", "x2", "y2"), box))
            row.update(score=face["score"], landmarks=_json_text(face["landmarks"]), emotion=face["emotion"])
            row.update(zip(_prefixed("emotion", self.emotions), (face["emotions"][k] for k in self.emotions)))
            row.update(age=face["age"], gender=face["gender"])
            row.update(zip(_prefixed("gender", self.genders), (face["genders"][k] for k in self.genders)))
            row["ethnicity"] = face["ethnicity"]
            row.update(
                zip(
                    _prefixed("ethnicity", self.ethnicities),
                    (face["ethnicities"][k] for k in self.ethnicities),
                )
            )
            row["embedding"] = _json_text(face["embedding"])
            rows.append(row)
        return rows

    def arrow_schema(self):
        """One row per image: ``image`` string, ``error`` string (null when analysed),
        ``faces`` list of structs with Face.to_dict()'s fields (null on error)."""
        import pyarrow as pa

        def probabilities(labels: Sequence[str]):
            return pa.struct([(label, pa.float64()) for label in labels])

        face = pa.struct([
            ("box", pa.list_(pa.float64())),
            ("score", pa.float64()),
            ("landmarks", pa.list_(pa.list_(pa.float64()))),
            ("emotion", pa.string()),
            ("emotions", probabilities(self.emotions)),
            ("age", pa.float64()),
            ("gender", pa.string()),
            ("genders", probabilities(self.genders)),
            ("ethnicity", pa.string()),
            ("ethnicities", probabilities(self.ethnicities)),
            # float64: the values read back equal the JSON record's exactly.
            ("embedding", pa.list_(pa.float64())),
        ])  # fmt: skip
        return pa.schema([("image", pa.string()), ("error", pa.string()), ("faces", pa.list_(face))])

    def arrow_row(self, record: Record) -> dict[str, Any]:
        return {"image": record["image"], "error": record.get("error"), "faces": record.get("faces")}

    @staticmethod
    def from_arrow_row(row: dict[str, Any]) -> Record:
        if row.get("error") is not None:
            return {"image": row["image"], "error": row["error"]}
        return {"image": row["image"], "faces": row.get("faces") or []}


@dataclass(frozen=True)
class VideoLayout:
    """How clip records become CSV and Parquet rows: one row per person per sampled frame
    (smoothed probabilities); the per-person and clip summaries are in JSONL only."""

    emotions: tuple[str, ...]
    key: str = "video"

    @classmethod
    def for_config(cls, config: "ModelConfig") -> "VideoLayout":
        return cls(tuple(config.emotions))

    @property
    def csv_columns(self) -> list[str]:
        return ["video", "error", "person", "t", "x1", "y1", "x2", "y2", "emotion", *self.emotions]

    def csv_rows(self, record: Record) -> list[dict[str, Any]]:
        rows = []
        for track in record.get("tracks") or []:
            for frame in track["frames"]:
                probabilities = frame["emotions"]
                row: dict[str, Any] = {
                    "video": record["video"],
                    "error": "",
                    "person": track["id"],
                    "t": frame["t"],
                }
                row.update(zip(("x1", "y1", "x2", "y2"), frame["box"]))
                row["emotion"] = max(probabilities, key=probabilities.get)
                row.update((label, probabilities[label]) for label in self.emotions)
                rows.append(row)
        return rows or [{"video": record["video"], "error": record.get("error", "")}]

    def arrow_schema(self):
        import pyarrow as pa

        numbers = [(name, pa.float64()) for name in ("t", "x1", "y1", "x2", "y2")]
        return pa.schema(
            [("video", pa.string()), ("error", pa.string()), ("person", pa.int64()), *numbers,
             ("emotion", pa.string()), *[(label, pa.float64()) for label in self.emotions]]
        )  # fmt: skip

    def arrow_rows(self, record: Record) -> list[dict[str, Any]]:
        return [{k: (None if v == "" else v) for k, v in row.items()} for row in self.csv_rows(record)]


Layout = ImageLayout | VideoLayout


# ---------------------------------------------------------------------------- writers


def output_format(path: str | Path) -> str:
    """The format of ``path`` by its suffix: jsonl, csv or parquet (BatchError otherwise)."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise BatchError(
            f"{path}: unknown output format {suffix or '(no suffix)'}; use .jsonl, .csv or .parquet"
        )
    return FORMATS[suffix]


def _drop_partial_last_line(path: Path) -> None:
    """A run killed mid-write can leave half a line: cut it before appending."""
    with open(path, "rb+") as file:
        file.seek(0, os.SEEK_END)
        size = file.tell()
        if size == 0:
            return
        file.seek(size - 1)
        if file.read(1) == b"\n":
            return
        step, end = 65536, size
        while end > 0:
            start = max(0, end - step)
            file.seek(start)
            newline = file.read(end - start).rfind(b"\n")
            if newline >= 0:
                file.truncate(start + newline + 1)
                return
            end = start
        file.truncate(0)


class RecordWriter(Protocol):
    def write(self, record: Record) -> None: ...

    def close(self) -> None: ...


class JsonlWriter:
    """One record per line, UTF-8; each line is flushed, so an interrupted run keeps them."""

    def __init__(self, path: Path, append: bool = False) -> None:
        if append and path.exists():
            _drop_partial_last_line(path)
        self._file = open(path, "a" if append else "w", encoding="utf-8", newline="\n")

    def write(self, record: Record) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class CsvWriter:
    """``layout.csv_columns``, a header first; list fields (landmarks, embedding) as JSON text."""

    def __init__(self, path: Path, layout: Layout, append: bool = False) -> None:
        if append and path.exists():
            _drop_partial_last_line(path)
        fresh = not append or not path.exists() or path.stat().st_size == 0
        self._layout = layout
        self._file = open(path, "a" if append else "w", encoding="utf-8", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=layout.csv_columns)
        if fresh:
            self._writer.writeheader()

    def write(self, record: Record) -> None:
        self._writer.writerows(self._layout.csv_rows(record))
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise BatchError("Parquet output needs pyarrow: pip install 'face_mtl[scale]' (or pyarrow)") from None
    return pyarrow


class ParquetWriter:
    """One Parquet file with ``layout.arrow_schema()``, written to a temporary name and renamed
    on close (a Parquet file is unreadable until its footer is written). Appending rewrites
    the rows already there into the new file first."""

    ROWS_PER_GROUP = 1024

    def __init__(self, path: Path, layout: Layout, append: bool = False) -> None:
        pa = _pyarrow()
        self._pa, self._path, self._layout = pa, path, layout
        self._schema = layout.arrow_schema()
        self._temporary = path.with_name(path.name + ".tmp")
        self._writer = pa.parquet.ParquetWriter(self._temporary, self._schema)
        self._rows: list[dict[str, Any]] = []
        if append and path.exists():
            self._writer.write_table(pa.parquet.read_table(path, schema=self._schema))

    def _rows_of(self, record: Record) -> list[dict[str, Any]]:
        if isinstance(self._layout, ImageLayout):
            return [self._layout.arrow_row(record)]
        return self._layout.arrow_rows(record)

    def write(self, record: Record) -> None:
        self._rows.extend(self._rows_of(record))
        if len(self._rows) >= self.ROWS_PER_GROUP:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            self._writer.write_table(self._pa.Table.from_pylist(self._rows, schema=self._schema))
            self._rows = []

    def close(self) -> None:
        self._flush()
        self._writer.close()
        os.replace(self._temporary, self._path)


def open_writer(path: str | Path, layout: Layout, *, append: bool = False) -> RecordWriter:
    """A writer for ``path``'s format (by suffix); ``append`` adds to an existing file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = output_format(path)
    if kind == "jsonl":
        return JsonlWriter(path, append)
    if kind == "csv":
        return CsvWriter(path, layout, append)
    return ParquetWriter(path, layout, append)


# ---------------------------------------------------------------------------- reading back


def _output_files(path: Path) -> list[Path]:
    """The file itself, or the part files of a folder written by the Ray engine."""
    if path.is_dir():
        suffixes = {suffix for suffix, kind in FORMATS.items() if kind == FORMATS.get(path.suffix.lower())}
        return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    return [path] if path.is_file() else []


def read_records(path: str | Path) -> Iterator[Record]:
    """Records of a JSONL or Parquet output (a file, or a Ray engine's folder of parts);
    clips' Parquet gives its rows. Unreadable JSONL lines (a run cut mid-line) are skipped.
    CSV holds rows, not records: use csv.DictReader (or pandas) on it."""
    path = Path(path)
    kind = output_format(path)
    if kind == "csv":
        raise BatchError(f"{path}: CSV holds one row per face, not records; read it with csv or pandas")
    for part in _output_files(path):
        if kind == "jsonl":
            with open(part, encoding="utf-8") as lines:
                for line in lines:
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError:
                        continue
        else:
            table = _pyarrow().parquet.read_table(part)
            image_rows = "image" in table.column_names and "faces" in table.column_names
            for row in table.to_pylist():
                if image_rows:
                    yield ImageLayout.from_arrow_row(row)
                else:
                    yield {k: v for k, v in row.items() if v is not None}


def _complete_lines(lines: Iterable[str]) -> Iterator[str]:
    """Lines that end with a newline: a run killed mid-write leaves its last row cut."""
    for line in lines:
        if line.endswith("\n"):
            yield line


def done_inputs(path: str | Path, key: str) -> set[str]:
    """The inputs (``key``: "image" or "video") an earlier run already wrote to ``path``."""
    path = Path(path)
    kind = output_format(path)
    done: set[str] = set()
    for part in _output_files(path):
        if kind == "jsonl":
            done.update(r[key] for r in read_records(part) if key in r)
        elif kind == "csv":
            with open(part, encoding="utf-8", newline="") as file:
                done.update(row[key] for row in csv.DictReader(_complete_lines(file)) if row.get(key))
        else:
            table = _pyarrow().parquet.read_table(part, columns=[key])
            done.update(v for v in table.column(key).to_pylist() if v is not None)
    return done


# ---------------------------------------------------------------------------- engines


@dataclass(frozen=True)
class AnalyzerOptions:
    """How each engine builds its FaceAnalyzer (plain values: they travel to Ray workers)."""

    weights: str | None = None
    device: str | None = None
    test_time_flip: bool | None = None

    def build(self) -> "FaceAnalyzer":
        from .analyzer import FaceAnalyzer

        return FaceAnalyzer(weights=self.weights, device=self.device, test_time_flip=self.test_time_flip)

    def config(self) -> "ModelConfig":
        """The weights' config (labels, input size) without loading the network."""
        from .config import ModelConfig
        from .weights import CONFIG_FILE, resolve_weights

        return ModelConfig.from_json(resolve_weights(self.weights) / CONFIG_FILE)


@dataclass
class Summary:
    """What a run did: inputs analysed, faces found, error records, inputs skipped (resume).
    ``faces`` and ``errors`` are None where the engine does not see the records (Ray)."""

    done: int = 0
    faces: int | None = 0
    errors: int | None = 0
    skipped: int = 0

    def count(self, record: Record) -> None:
        self.done += 1
        if self.faces is not None:
            self.faces += len(record.get("faces") or ())
        if self.errors is not None:
            self.errors += "error" in record

    def describe(self, unit: str) -> str:
        parts = [f"{self.done} {unit}"]
        if self.faces is not None:
            parts.append(f"{self.faces} face{'' if self.faces == 1 else 's'}")
        if self.errors is not None:
            parts.append(f"{self.errors} error{'' if self.errors == 1 else 's'}")
        if self.skipped:
            parts.append(f"{self.skipped} already done")
        return ", ".join(parts)


class Engine(Protocol):
    """Analyses image files and writes one record per image to ``out`` (format by suffix)."""

    def run(
        self, paths: Sequence[str], out: Path, options: AnalyzerOptions, *, resume: bool = False
    ) -> Summary: ...


@contextmanager
def _progress(total: int, unit: str, show: bool):
    """A per-record callback that advances a progress bar (None when ``show`` is False); the
    bar is closed however the run ends."""
    if not show:
        yield None
        return
    from tqdm.auto import tqdm

    # disable=None: a bar on terminals only (stderr), nothing in logs or pipes.
    with tqdm(total=total, unit=f" {unit}", desc="analysing", disable=None, dynamic_ncols=True) as bar:
        yield lambda: bar.update(1)


def write_records(
    records: Iterable[Record],
    out: Path,
    layout: Layout,
    *,
    append: bool,
    progress: Callable[[], None] | None = None,
) -> Summary:
    """Write records as they come (each is written as soon as the engine yields it). Stopping
    early (an error, Ctrl-C) closes ``records``, so that an engine's threads stop before this
    returns."""
    summary = Summary()
    writer = open_writer(out, layout, append=append)
    try:
        for record in records:
            writer.write(record)
            summary.count(record)
            if progress is not None:
                progress()
    finally:
        close = getattr(records, "close", None)
        if close is not None:
            close()
        writer.close()  # also on Ctrl-C: what was written stays readable
    return summary


def _pending(paths: Sequence[str], out: Path, key: str, resume: bool) -> tuple[list[str], int]:
    if not resume or not out.exists():
        return list(paths), 0
    done = done_inputs(out, key)
    todo = [p for p in paths if p not in done]
    return todo, len(paths) - len(todo)


@contextmanager
def torch_threads_shared(workers: int) -> Iterator[None]:
    """torch's threads divided among ``workers`` for the duration (4 threads on 2 cores fight)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, round(before / max(1, workers))))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class LocalEngine:
    """This process: a thread pool decodes the next images while ``workers`` batches are
    analysed at once, each by its share of the cores' torch threads."""

    batch_size: int = BATCH_SIZE
    decode_threads: int = DECODE_THREADS
    workers: int = WORKERS
    progress: bool = True

    def run(
        self, paths: Sequence[str], out: Path, options: AnalyzerOptions, *, resume: bool = False
    ) -> Summary:
        output_format(out)
        todo, skipped = _pending(paths, out, "image", resume)
        analyzer = options.build()
        with _progress(len(todo), "photos", self.progress) as advance, torch_threads_shared(self.workers):
            records = analyze_files(
                todo, analyzer, batch_size=self.batch_size, decode_threads=self.decode_threads, workers=self.workers
            )
            summary = write_records(
                records, out, ImageLayout.for_config(analyzer.config), append=resume, progress=advance
            )
        summary.skipped = skipped
        return summary


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
    todo, skipped = _pending(paths, out, "video", resume)
    with _progress(len(todo), "clips", progress) as advance:
        summary = write_records(
            analyze_clips(todo, analyzer, **video_options) if todo else iter(()),
            out, VideoLayout.for_config(analyzer.config), append=resume, progress=advance,
        )  # fmt: skip
    summary.skipped = skipped
    return summary


def engine(name: str, **settings: Any) -> Engine:
    """The engine called ``name`` ("local" or "ray"), built with its ``settings``.
    BatchError when it is unknown or its extra is not installed."""
    if name == "local":
        return LocalEngine(**settings)
    if name == "ray":
        try:
            from .ray_engine import RayEngine
        except ImportError as error:
            raise BatchError(
                f"--engine ray needs Ray Data ({error.name or 'ray'} is not installed): "
                "pip install 'face_mtl[scale]'"
            ) from None
        return RayEngine(**settings)
    raise BatchError(f"unknown engine {name!r}: use local or ray")
