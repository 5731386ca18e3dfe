"""The local engine: this process, a thread pool decoding the next images while batches are
analysed (``FaceAnalyzer.analyze_batch``), each by its share of the cores' torch threads."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...images import load_image
from ..discover import discover
from ..formats import output_format, pending_inputs
from ..layouts import ImageLayout
from ..records import Loader, Record, analyze_loaded, load_or_error
from .base import BATCH_SIZE, AnalyzerOptions, Summary, progress_bar, write_records

if TYPE_CHECKING:
    from ...analyzer import FaceAnalyzer

# A batch is also closed at this many decoded pixels (about 120 MB of RGB).
BATCH_PIXELS = 40_000_000
DECODE_THREADS = min(4, os.cpu_count() or 1)
# Batches analysed at once by the local engine. Two batches in flight, each computed by
# one thread per core share, ran 200 px photos 1.28x faster on 2 cores than one batch at a
# time on both cores: the detector's many small operations leave cores idle.
WORKERS = min(2, os.cpu_count() or 1)

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
        images = map_ahead(partial(load_or_error, loader=loader), paths, decoding, ahead=batch_size + decode_threads)
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
        todo, skipped = pending_inputs(paths, out, "image", resume)
        analyzer = options.build()
        with progress_bar(len(todo), "photos", self.progress) as advance, torch_threads_shared(self.workers):
            records = analyze_files(
                todo, analyzer, batch_size=self.batch_size, decode_threads=self.decode_threads, workers=self.workers
            )
            summary = write_records(
                records, out, ImageLayout.for_config(analyzer.config), append=resume, progress=advance
            )
        summary.skipped = skipped
        return summary

