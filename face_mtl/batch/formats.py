"""Output formats: writers and readers for JSONL, CSV and Parquet, and what resume skips.

JSONL holds one record a line, CSV one row per face, Parquet one row per image with the
record's nesting kept. A Ray engine's output is a folder of part files in one format.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from .layouts import ImageLayout, Layout
from .records import BatchError, Record

# Output format by file suffix.
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}


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


def output_files(path: Path) -> list[Path]:
    """The file itself, or the part files of a folder written by the Ray engine (files with a
    suffix of the folder's format)."""
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
    for part in output_files(path):
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
    for part in output_files(path):
        if kind == "jsonl":
            done.update(r[key] for r in read_records(part) if key in r)
        elif kind == "csv":
            with open(part, encoding="utf-8", newline="") as file:
                done.update(row[key] for row in csv.DictReader(_complete_lines(file)) if row.get(key))
        else:
            table = _pyarrow().parquet.read_table(part, columns=[key])
            done.update(v for v in table.column(key).to_pylist() if v is not None)
    return done


def pending_inputs(paths: Sequence[str], out: Path, key: str, resume: bool) -> tuple[list[str], int]:
    """(inputs still to analyse, inputs skipped): with ``resume``, those ``out`` does not hold yet."""
    if not resume or not out.exists():
        return list(paths), 0
    done = done_inputs(out, key)
    todo = [p for p in paths if p not in done]
    return todo, len(paths) - len(todo)

