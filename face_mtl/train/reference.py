"""Reference targets for the attribute heads ("learning without forgetting", Li & Hoiem 2016).

Training on from good weights, expression and verification keep improving while age and
ethnicity drift away from their best (run 20: age MAE 5.04 at epoch 14, 5.25 at the end, as its
UTKFace training loss fell from 3.40 to 2.84): the 18,624 UTKFace faces are too few to hold
those heads in place. A reference network's predictions (for example the shipped weights') give
every training face, FER+ and CelebA ones included, soft age, gender and ethnicity targets, so
the heads keep what the reference knew while the backbone changes.

The targets are the reference's flip-averaged probabilities on each face's inference view,
computed once per reference and cached in ``CACHE/reference/KEY/SPLIT.npz`` (KEY: a hash of the
reference's weights file) in the order of the crop cache.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from ..config import ModelConfig
from ..data.sets import CropSet
from ..evaluate import cached_inputs
from ..weights import WEIGHTS_FILE, load_model
from .losses import REFERENCE_HEADS


def head_widths(config: ModelConfig) -> dict[str, int]:
    """Columns each reference head takes in a target row, by head, in REFERENCE_HEADS order."""
    return {"age": config.max_age + 1, "gender": len(config.genders), "ethnicity": len(config.ethnicities)}


def reference_probabilities(model, config: ModelConfig, crops: np.ndarray, device: str = "cpu",
                            batch: int = 256) -> np.ndarray:
    """N x (age bins + genders + ethnicities) float32: the softmax of each REFERENCE_HEADS
    output, averaged over each face's tight view and its mirror image, side by side."""
    model.eval()
    rows = []
    with torch.inference_mode():
        for x in cached_inputs(crops, config, device, batch):
            outputs = model(torch.cat([x, torch.flip(x, dims=[3])]))
            n = len(x)
            probabilities = [outputs[h].float().softmax(dim=1) for h in REFERENCE_HEADS]
            rows.append(torch.cat([(p[:n] + p[n:]) / 2 for p in probabilities], dim=1).cpu())
    if not rows:
        return np.zeros((0, sum(head_widths(config).values())), np.float32)
    return torch.cat(rows).numpy().astype(np.float32)


def reference_key(weights: str | Path) -> str:
    """Names a reference's cache: the first 16 hex digits of its weights file's SHA-256."""
    digest = hashlib.sha256()
    with open(Path(weights) / WEIGHTS_FILE, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def attach_reference(splits: dict[str, CropSet], weights: str | Path, student: ModelConfig, cache_dir: str | Path,
                     device: str = "cpu") -> list[str]:
    """Put the reference network's targets into every training split (``*_train``), in place,
    computing each split's once and caching it; returns the names of those splits.

    The reference must see faces as the student does (same input size) and predict the same
    classes, or its targets would not match the student's heads: otherwise ValueError."""
    model, config = load_model(weights, device=device)
    mismatched = [f for f in ("input_size", "max_age", "genders", "ethnicities")
                  if getattr(config, f) != getattr(student, f)]
    if mismatched:
        raise ValueError(f"reference weights {weights} differ from the network being trained in "
                         f"{', '.join(mismatched)}: their predictions cannot be its targets")
    folder = Path(cache_dir) / "reference" / reference_key(weights)
    folder.mkdir(parents=True, exist_ok=True)
    attached = []
    for name in [n for n in splits if n.endswith("_train")]:
        path = folder / f"{name}.npz"
        targets = None
        if path.exists():
            with np.load(path) as data:
                targets = data["reference"]
            if len(targets) != len(splits[name]):  # the crop cache was rebuilt since
                targets = None
        if targets is None:
            targets = reference_probabilities(model, config, splits[name].crops, device)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, reference=targets)
            tmp.replace(path)
        splits[name] = splits[name].with_reference(targets)
        attached.append(name)
    return attached
