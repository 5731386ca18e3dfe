"""The Ray Data engine: the local engine's analysis as a Ray Data pipeline, on one machine or
a cluster (``face-mtl analyze DIR --engine ray [--address ADDR] --out results.parquet``).

``read_binary_files`` (a bad file stays bytes, so it becomes an error record rather than a
failed read) -> ``map_batches`` over an actor pool, each actor holding one FaceAnalyzer
loaded once -> ``write_parquet``, or JSONL / CSV part files. The output is a folder of part
files, one per written block; records come in no particular order.

This module imports Ray at the top: only ``face_mtl.batch.engine("ray")`` imports it (and
the old name ``face_mtl.ray_engine``), so Ray stays the optional extra ``[scale]``.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import ray
import ray.data
from ray.data.block import BlockAccessor
from ray.data.datasource import BlockBasedFileDatasink

from ...images import decode_image
from ..formats import output_files, output_format, pending_inputs
from ..layouts import ImageLayout
from ..records import BatchError, analyze_loaded, error_record, load_or_error
from .base import BATCH_SIZE, AnalyzerOptions, Summary

# The face_mtl package folder travels to every worker (Ray's runtime_env), so workers run the
# driver's code and bundled weights, whatever face_mtl the nodes may have installed.
PACKAGE_DIR = Path(__file__).resolve().parents[2]


class AnalyzeActor:
    """One Ray actor: a FaceAnalyzer loaded once, then batches of files -> record rows."""

    def __init__(self, options: AnalyzerOptions, layout: ImageLayout) -> None:
        self.analyzer = options.build()
        self.layout = layout
        self.schema = layout.arrow_schema()

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        """``batch``: "path" (str) and "bytes" (the file's bytes) columns; returns one row per
        file in ``ImageLayout.arrow_schema()``."""
        items: list[tuple[str, Any]] = []
        for path, data in zip(batch["path"], batch["bytes"]):
            path = str(path)
            try:
                items.append((path, decode_image(bytes(data), path)))
            except Exception as error:  # any undecodable file becomes an error record
                items.append((path, error))
        records = analyze_loaded(self.analyzer, items)
        return pa.Table.from_pylist([self.layout.arrow_row(r) for r in records], schema=self.schema)


class JsonlParts(BlockBasedFileDatasink):
    """Part files of JSONL records, the same lines as the local engine writes."""

    def __init__(self, path: str) -> None:
        super().__init__(path, file_format="jsonl")

    def write_block_to_file(self, block: BlockAccessor, file: pa.NativeFile) -> None:
        lines = (
            json.dumps(ImageLayout.from_arrow_row(row), ensure_ascii=False)
            for row in block.to_arrow().to_pylist()
        )
        file.write("".join(line + "\n" for line in lines).encode("utf-8"))


class CsvParts(BlockBasedFileDatasink):
    """Part files of CSV rows (one per face), each with the header, as the local engine writes."""

    def __init__(self, path: str, layout: ImageLayout) -> None:
        super().__init__(path, file_format="csv")
        self.layout = layout

    def write_block_to_file(self, block: BlockAccessor, file: pa.NativeFile) -> None:
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=self.layout.csv_columns)
        writer.writeheader()
        for row in block.to_arrow().to_pylist():
            writer.writerows(self.layout.csv_rows(ImageLayout.from_arrow_row(row)))
        file.write(text.getvalue().encode("utf-8"))


def _is_remote(path: str) -> bool:
    return "://" in path


def _clear_parts(out: Path) -> None:
    """Remove the part files of an earlier run (never anything else in the folder)."""
    for part in output_files(out):
        part.unlink()


@dataclass(frozen=True)
class ActorPlan:
    actors: int
    gpus_per_actor: float  # 0: CPU actors
    device: str  # "cuda" or "cpu", what each actor's FaceAnalyzer runs on


def plan_actors(cpus: float, gpus: float, device: str | None, concurrency: int | None,
                gpus_per_actor: float | None) -> ActorPlan:
    """How many actors of which kind a cluster of ``cpus`` and ``gpus`` runs: GPU actors
    (``gpus_per_actor`` each, default 1) when it has GPUs and ``device`` is not "cpu", else
    CPU actors; ``concurrency`` of them, by default one per GPU share or one per CPU but one.
    Raises BatchError for --device cuda without GPUs, and for as many CPU actors as CPUs: each
    actor holds one CPU, and Ray Data's read tasks would then wait for one (seen:
    --concurrency 2 on a 2-CPU machine had not finished 1000 photos after 5 minutes, against
    67 s with one actor)."""
    if device and device.startswith("cuda") and gpus == 0:
        raise BatchError(f"--device {device}: the Ray cluster has no GPUs")
    per_actor = 0.0 if device == "cpu" or gpus == 0 else (gpus_per_actor or 1.0)
    default = max(1, int(gpus / per_actor)) if per_actor else max(1, int(cpus) - 1)
    actors = concurrency or default
    if not per_actor and actors >= cpus:
        advice = f"use at most {int(cpus) - 1}" if cpus >= 2 else "use the local engine"
        raise BatchError(
            f"{actors} CPU actor(s) on a Ray cluster of {cpus:g} CPUs: each actor holds one CPU, "
            f"which leaves none for reading the files; {advice}"
        )
    return ActorPlan(actors=actors, gpus_per_actor=per_actor, device="cuda" if per_actor else "cpu")


@dataclass(frozen=True)
class RayEngine:
    """Ray Data over a local instance (``address`` None; ``num_cpus`` caps it) or an existing
    cluster (``address``: "auto", "HOST:6379" or "ray://HOST:10001").

    ``concurrency``: actors, each with one FaceAnalyzer (default: one per GPU, or one per CPU
    but one left for reading). ``batch_size``: files per actor call. ``gpus_per_actor``: GPU
    share of each actor when the cluster has GPUs (default 1; 0.5 puts two on a GPU).
    """

    address: str | None = None
    num_cpus: int | None = None
    concurrency: int | None = None
    batch_size: int = BATCH_SIZE
    gpus_per_actor: float | None = None

    def run(self, paths, out: Path, options: AnalyzerOptions, *, resume: bool = False) -> Summary:
        kind = output_format(out)
        if out.exists() and not out.is_dir():
            raise BatchError(f"{out}: is a file; --engine ray writes a folder of part files there")
        if self.address and self.num_cpus:
            raise BatchError("--num-cpus sizes a local Ray instance; a cluster's size is its own")
        if self.address:
            # Workers on other machines resolve relative paths against their own folders.
            paths = [p if _is_remote(p) else os.path.abspath(p) for p in paths]
        layout = ImageLayout.for_config(options.config())  # bad --weights fail before Ray starts
        todo, skipped = pending_inputs(paths, out, "image", resume)
        summary = Summary(done=len(todo), faces=None, errors=None, skipped=skipped)
        if not todo:
            return summary
        if out.is_dir() and not resume:
            _clear_parts(out)

        started_here = not ray.is_initialized()
        if started_here:
            ray.init(
                address=self.address,
                num_cpus=None if self.address else self.num_cpus,
                runtime_env={"py_modules": [str(PACKAGE_DIR)], "excludes": ["__pycache__"]},
                include_dashboard=False,
            )
        try:
            dataset = self._pipeline(todo, options, layout)
            if kind == "parquet":
                dataset.write_parquet(str(out))
            elif kind == "jsonl":
                dataset.write_datasink(JsonlParts(str(out)))
            else:
                dataset.write_datasink(CsvParts(str(out), layout))
        finally:
            if started_here:
                ray.shutdown()
        return summary

    def _pipeline(self, paths: list[str], options: AnalyzerOptions, layout: ImageLayout) -> ray.data.Dataset:
        resources = ray.cluster_resources()
        plan = plan_actors(float(resources.get("CPU", 1)), float(resources.get("GPU", 0)), options.device,
                           self.concurrency, self.gpus_per_actor)

        # Files the driver cannot see (missing, folders) become error records here, as in the
        # local engine; everything else is read by Ray, bad images included.
        readable = [p for p in paths if _is_remote(p) or os.path.isfile(p)]
        seen = set(readable)
        unreadable = [p for p in paths if p not in seen]
        parts = []
        if readable:
            parts.append(
                ray.data.read_binary_files(readable, include_paths=True).map_batches(
                    AnalyzeActor,
                    fn_constructor_kwargs={"options": replace(options, device=plan.device), "layout": layout},
                    batch_size=self.batch_size,
                    batch_format="numpy",
                    compute=ray.data.ActorPoolStrategy(size=plan.actors),
                    num_cpus=1,
                    num_gpus=plan.gpus_per_actor or None,
                )
            )
        if unreadable:
            rows = [layout.arrow_row(error_record("image", p, load_or_error(p))) for p in unreadable]
            parts.append(ray.data.from_arrow(pa.Table.from_pylist(rows, schema=layout.arrow_schema())))
        return parts[0] if len(parts) == 1 else parts[0].union(*parts[1:])
