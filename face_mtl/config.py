"""Model configuration: everything needed to rebuild a network and feed it, stored as JSON.

Like timm's pretrained configs, preprocessing is data (input size, mean/std) and travels with
the weights in ``config.json`` beside ``model.safetensors``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1

# AffectNet's 8 expressions, in the order the emotion head emits them.
EMOTIONS = ("anger", "contempt", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
# UTKFace's 5 ethnicity labels, in UTKFace's order (race 0..4).
ETHNICITIES = ("white", "black", "asian", "indian", "others")
GENDERS = ("female", "male")
# What runs the network on the CPU in float32: "auto" (ONNX Runtime where installed, else
# torch), "onnx" or "torch".
RUNTIMES = ("auto", "onnx", "torch")


class ConfigError(ValueError):
    """A config.json that cannot describe the weights it travels with."""


@dataclass(frozen=True)
class ModelConfig:
    """A multi-task face network: backbone, input and the label lists of every head.

    ``input_size`` is the side of the square RGB crop in pixels; ``mean``/``std`` apply to
    pixels scaled to 0..1. ``max_age`` bounds the age head, which predicts a distribution
    over whole years 0..max_age and reports its expected value. ``test_time_flip``: predict
    from the crop and its mirror image together (averaged), at twice the network cost.
    ``verification``: the calibrated same-person threshold of the identity embedding and its
    error rates on held-out people (``face_mtl.identity.calibrate``), and the thresholds that
    group folders of them best (``grouping_threshold``; ``grouping_by_faces``, one per folder
    size); empty when uncalibrated.
    """

    backbone: str = "efficientnet_b0"
    input_size: int = 112
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    emotions: tuple[str, ...] = EMOTIONS
    genders: tuple[str, ...] = GENDERS
    ethnicities: tuple[str, ...] = ETHNICITIES
    max_age: int = 100
    embedding_size: int = 128
    dropout: float = 0.2
    test_time_flip: bool = True
    # "bf16": on a CPU with native bfloat16 (AVX512-BF16/AMX) the network runs under bf16
    # autocast, markedly faster for dense convolutions; "fp32" everywhere else.
    inference_precision: str = "fp32"
    format_version: int = FORMAT_VERSION
    training: dict[str, Any] = field(default_factory=dict, compare=False)
    metrics: dict[str, Any] = field(default_factory=dict, compare=False)
    verification: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def head_sizes(self) -> dict[str, int]:
        """Output width of every head, by head name."""
        return {
            "emotion": len(self.emotions),
            "age": self.max_age + 1,
            "gender": len(self.genders),
            "ethnicity": len(self.ethnicities),
            "embedding": self.embedding_size,
        }

    def with_updates(self, **changes: Any) -> "ModelConfig":
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown config fields: {', '.join(unknown)}")
        version = data.get("format_version", FORMAT_VERSION)
        if version > FORMAT_VERSION:
            raise ConfigError(
                f"config format_version {version} is newer than this face_mtl understands "
                f"({FORMAT_VERSION}); upgrade face_mtl"
            )
        tuples = {k: tuple(v) for k, v in data.items() if isinstance(v, list)}
        return cls(**{**data, **tuples})

    @classmethod
    def from_json(cls, path: str | Path) -> "ModelConfig":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}: not valid JSON ({error})") from error
        return cls.from_dict(data)
