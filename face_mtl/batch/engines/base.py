"""What every engine shares: how it builds its analyzer, what a run reports, the ``Engine``
interface, and writing records as they come."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..formats import open_writer
from ..layouts import Layout
from ..records import Record

if TYPE_CHECKING:
    from ...analyzer import FaceAnalyzer
    from ...config import ModelConfig

# Images per detector and network batch (per actor call for Ray): large enough to batch the
# network's input, small enough that the batches in flight (the local engine's WORKERS) plus
# the next one being decoded stay within memory.
BATCH_SIZE = 16


@dataclass(frozen=True)
class AnalyzerOptions:
    """How each engine builds its FaceAnalyzer (plain values: they travel to Ray workers)."""

    weights: str | None = None
    device: str | None = None
    test_time_flip: bool | None = None

    def build(self) -> "FaceAnalyzer":
        from ...analyzer import FaceAnalyzer

        return FaceAnalyzer(weights=self.weights, device=self.device, test_time_flip=self.test_time_flip)

    def config(self) -> "ModelConfig":
        """The weights' config (labels, input size) without loading the network."""
        from ...config import ModelConfig
        from ...weights import CONFIG_FILE, resolve_weights

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
def progress_bar(total: int, unit: str, show: bool):
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

