"""Layouts: how records become CSV rows and Parquet rows, for one model's labels."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .records import Record

if TYPE_CHECKING:
    from ..config import ModelConfig


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
