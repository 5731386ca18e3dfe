"""Many inputs in one call: discovery, records, writers, and the engines that run them.

A *record* is one plain dict per input: ``{"image": path, "faces": [Face.to_dict(), ...]}``,
or ``{"image": path, "error": "one-line reason"}`` for a file that cannot be analysed (for
clips, ``{"video": path, ...VideoResult.to_dict()...}`` or ``{"video": path, "error": ...}``).
A bad file is never fatal: it becomes an error record.

One job per module, each importing only the ones listed before it:

- ``discover``: inputs (folders, globs, files, lists) -> paths;
- ``records``: record shapes, error reasons, decoded images -> records
  (through ``FaceAnalyzer.analyze_batch``: the facade owns inference);
- ``layouts``: records -> CSV and Parquet rows, per model's labels;
- ``formats``: writers and readers for JSONL, CSV and Parquet, and what ``--resume`` skips;
- ``engines``: ``Engine`` and the name -> engine registry (``engine("local" | "ray")``);
  ``engines.base`` (what engines share), ``engines.local`` (this process, decoding the next
  images in threads while the network runs), ``engines.ray`` (Ray Data; imported only when
  asked for, so Ray stays an optional extra);
- ``clips``: one record per clip, through ``face_mtl.video``.

This module only gathers their public names, so ``face_mtl.batch.X`` keeps working.
"""

from .clips import analyze_clips, run_clips
from .discover import IMAGE_EXTENSIONS, LIST_EXTENSIONS, VIDEO_EXTENSIONS, discover
from .engines import ENGINES, engine
from .engines.base import BATCH_SIZE, AnalyzerOptions, Engine, Summary, progress_bar, write_records
from .engines.local import (
    BATCH_PIXELS,
    DECODE_THREADS,
    WORKERS,
    LocalEngine,
    analyze_files,
    analyze_many,
    map_ahead,
    torch_threads_shared,
)
from .formats import (
    FORMATS,
    CsvWriter,
    JsonlWriter,
    ParquetWriter,
    RecordWriter,
    done_inputs,
    open_writer,
    output_files,
    output_format,
    pending_inputs,
    read_records,
)
from .layouts import ImageLayout, Layout, VideoLayout
from .records import (
    MAX_REASON,
    BatchError,
    Loader,
    Record,
    analyze_images,
    analyze_loaded,
    error_record,
    image_record,
    load_or_error,
    one_line_reason,
)

__all__ = [
    "BATCH_PIXELS", "BATCH_SIZE", "DECODE_THREADS", "ENGINES", "FORMATS", "IMAGE_EXTENSIONS",
    "LIST_EXTENSIONS", "MAX_REASON", "VIDEO_EXTENSIONS", "WORKERS",
    "AnalyzerOptions", "BatchError", "CsvWriter", "Engine", "ImageLayout", "JsonlWriter", "Layout",
    "Loader", "LocalEngine", "ParquetWriter", "Record", "RecordWriter", "Summary", "VideoLayout",
    "analyze_clips", "analyze_files", "analyze_images", "analyze_loaded", "analyze_many", "discover",
    "done_inputs", "engine", "error_record", "image_record", "load_or_error", "map_ahead",
    "one_line_reason", "open_writer", "output_files", "output_format", "pending_inputs",
    "progress_bar", "read_records", "run_clips", "torch_threads_shared", "write_records",
]  # fmt: skip
