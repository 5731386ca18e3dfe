"""Reference targets for the attribute heads ("learning without forgetting", Li & Hoiem 2016).

Training on from good weights, expression and verification keep improving while age and
ethnicity drift away from their best (run 20: age MAE 5.04 at epoch 14, 5.25 at the end, as its
UTKFace training loss fell from 3.40 to 2.84): the 18,624 UTKFace faces are too few to hold
those heads in place. A reference network's predictions (for example the shipped weights') give
every training face, FER+ and CelebA ones included, soft age, gender and ethnicity targets, so
the heads keep what the reference knew while the backbone changes.

The targets are the reference's flip-averaged probabilities on each face's inference view, at
the reference's own input size: a network shown faces at a size it was not trained at predicts
much worse (s29d, trained at 64 px, shown 72 px faces: age MAE 7.96 against 4.84, gender 0.890
against 0.940). They are computed once per reference and student crop size and cached in
``CACHE/reference/KEY/cropsN/SPLIT.npz`` (KEY: a hash of the reference's weights and config
files; N: the student's input size) in the order of the crop cache, with a fingerprint of the
crops they were computed on.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..config import ModelConfig
from ..data.sets import CropSet, crop_folder
from ..evaluate import cached_inputs
from ..model import softmax_of_views
from ..weights import CONFIG_FILE, WEIGHTS_FILE, load_model, resolve_weights
from .losses import REFERENCE_HEADS


def reference_probabilities(model, config: ModelConfig, crops: np.ndarray, device: str = "cpu",
                            batch: int = 256, desc: str | None = None) -> np.ndarray:
    """N x (age bins + genders + ethnicities) float32: the softmax of each REFERENCE_HEADS
    output, averaged over each face's tight view and its mirror image, side by side."""
    model.eval()
    rows = [np.zeros((0, sum(config.head_sizes[h] for h in REFERENCE_HEADS)), np.float32)]
    with torch.inference_mode():
        for x in tqdm(cached_inputs(crops, config, device, batch), total=-(-len(crops) // batch), desc=desc,
                      unit="batch", disable=desc is None, mininterval=30):
            probabilities = softmax_of_views(model(torch.cat([x, torch.flip(x, dims=[3])])), REFERENCE_HEADS, len(x))
            rows.append(torch.cat([probabilities[h] for h in REFERENCE_HEADS], dim=1).cpu().numpy())
    return np.concatenate(rows).astype(np.float32)


def reference_key(weights: str | Path) -> str:
    """Names a reference's cache: 16 hex digits of the SHA-256 of its weights and config files
    (the config holds the preprocessing the targets depend on)."""
    folder = resolve_weights(weights)
    digest = hashlib.sha256()
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        with open(folder / name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def crops_fingerprint(crops: np.ndarray) -> str:
    """A digest of the crops' bytes: cached targets belong to exactly these faces, in this order
    (a rebuilt crop cache may hold as many faces, but others)."""
    return hashlib.blake2b(np.ascontiguousarray(crops).data, digest_size=16).hexdigest()


def attach_reference(splits: dict[str, CropSet], weights: str | Path, student: ModelConfig, cache_dir: str | Path,
                     device: str = "cpu") -> tuple[str, list[str]]:
    """Put the reference network's targets into every training split (``*_train``), in place,
    computing each split's once and caching it; returns the cache's key (``reference_key``)
    and the names of those splits.

    The reference sees each face's tight box at its own input size, whatever the student's. It
    must predict the same classes, or its targets would not match the student's heads:
    otherwise ValueError. Loading it draws no numbers from torch's global generator, so a run's
    own draws stay as they were."""
    with torch.random.fork_rng(devices=[]):  # building the network initialises random weights
        model, config = load_model(weights, device=device)
    mismatched = [f for f in ("max_age", "genders", "ethnicities")
                  if getattr(config, f) != getattr(student, f)]
    if mismatched:
        raise ValueError(f"reference weights {weights} differ from the network being trained in "
                         f"{', '.join(mismatched)}: their predictions cannot be its targets")
    key = reference_key(weights)
    # One folder per student size: runs at 64 and 72 px share a reference without evicting
    # each other's targets.
    folder = Path(cache_dir) / "reference" / key / crop_folder(student.input_size)
    folder.mkdir(parents=True, exist_ok=True)
    attached = []
    for name in [n for n in splits if n.endswith("_train")]:
        path = folder / f"{name}.npz"
        fingerprint = crops_fingerprint(splits[name].crops)
        targets = None
        if path.exists():
            with np.load(path) as data:
                if str(data["crops"]) == fingerprint:
                    targets = data["reference"]
        if targets is None:
            targets = reference_probabilities(model, config, splits[name].crops, device, desc=f"reference {name}")
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, reference=targets, crops=np.array(fingerprint))
            tmp.replace(path)
        splits[name] = splits[name].with_reference(targets)
        attached.append(name)
    return key, attached
