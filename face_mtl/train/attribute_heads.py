"""Refit the age, gender and ethnicity heads of weights on their frozen backbone towards a
reference's predictions (weights folder in, weights folder out).

Training on from good weights, expression rises while held-out age drifts away (training/HISTORY.md,
runs 20-24): the heads over-fit UTKFace's 18,624 training faces. These heads are linear layers
over the pooled backbone features, so they can be refitted afterwards, cheaply and exactly:
the backbone, the expression head and the identity head are left as they are, so expression and
verification figures do not move. The targets are the reference weights' flip-averaged
probabilities on every training face (UTKFace, CelebA and FER+ training splits; the targets of
``--loss-reference``, cached by ``train/reference.py``); each face and its mirror image are two
samples. Optionally the UTKFace labels join in (``label_weight``: training's ``age_loss``, and
cross-entropy without training's 0.05 label smoothing for gender and ethnicity), which on run
23's weights made held-out age worse (bench/attribute_heads.py), so the default leaves them out.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..config import ModelConfig
from ..data.sets import CropSet, build_splits
from ..evaluate import (
    attribute_figures,
    cached_features,
    evaluate_splits,
    headline,
    predict_cached,
)
from ..model import FaceMTLNet, effective_precision, expected_years
from ..weights import load_model, resolve_weights, save_model
from .losses import REFERENCE_HEADS, age_loss, reference_loss
from .reference import attach_reference

TRAINING_SETS = ("utk_train", "celeba_train", "ferplus_train")
LinearHeads = dict[str, tuple[torch.Tensor, torch.Tensor]]  # head name -> (weight C x F, bias C)


def held_out_figures(heads: LinearHeads, features: torch.Tensor, split: CropSet) -> dict[str, float]:
    """Age MAE (years), gender and ethnicity accuracy of ``heads`` over N x 2 x F ``features``
    of ``split``'s faces, each head's softmax averaged over the two views (as ``face-mtl eval``)."""
    with torch.no_grad():
        p = {h: (features @ w.T + b).softmax(dim=-1).mean(dim=1) for h, (w, b) in heads.items()}
    return attribute_figures({"age": expected_years(p["age"]).numpy(), "gender": p["gender"].numpy(),
                              "ethnicity": p["ethnicity"].numpy()}, split)


def refit_heads(start: LinearHeads, features: torch.Tensor, targets: torch.Tensor, labels: dict[str, torch.Tensor] | None = None,
                label_weight: float = 0.0, epochs: int = 4, lr: float = 1e-3, batch: int = 512,
                generator: torch.Generator | None = None,
                report: Callable[[int, LinearHeads], None] | None = None) -> LinearHeads:
    """Adam from ``start`` (the REFERENCE_HEADS) on the mean KL divergence from ``targets``
    (N x the heads' columns side by side, ``reference_loss``'s layout) to the heads' softmax over
    N x F ``features``, plus ``label_weight`` x the label losses (``labels``: N ``age`` in years,
    NaN where unknown; ``gender`` and ``ethnicity`` class indices, -1 where unknown; training's
    ``age_loss`` and plain cross-entropy). Calls ``report(epoch, heads)`` after every epoch and
    returns the last heads; ``start`` is left as it was."""
    if label_weight and labels is None:
        raise ValueError("label_weight needs labels")
    params = {h: [w.clone().requires_grad_(), b.clone().requires_grad_()] for h, (w, b) in start.items()}
    optimiser = torch.optim.Adam([p for pair in params.values() for p in pair], lr=lr)

    def current() -> LinearHeads:
        return {h: (w.detach().clone(), b.detach().clone()) for h, (w, b) in params.items()}

    for epoch in range(1, epochs + 1):
        for index in torch.randperm(len(features), generator=generator).split(batch):
            x = features[index]
            logits = {h: x @ params[h][0].T + params[h][1] for h in REFERENCE_HEADS}
            loss = reference_loss(logits, targets[index], REFERENCE_HEADS)
            if label_weight:
                loss = loss + label_weight * _label_loss(logits, {f: v[index] for f, v in labels.items()})
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        if report is not None:
            report(epoch, current())
    return current()


def _label_loss(logits: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]) -> torch.Tensor:
    total = logits["age"].sum() * 0.0
    aged = ~torch.isnan(labels["age"])
    if aged.any():
        total = total + age_loss(logits["age"][aged], labels["age"][aged])
    for head in ("gender", "ethnicity"):
        known = labels[head] >= 0
        if known.any():
            total = total + F.cross_entropy(logits[head][known], labels[head][known])
    return total


def training_samples(model: FaceMTLNet, config: ModelConfig, sets: list[CropSet], device: str = "cpu",
                     precision: str = "fp32"):
    """(features, targets, labels) of every face of ``sets`` (with reference targets attached)
    and of its mirror image, as two samples with the face's flip-averaged targets."""
    features = torch.cat([cached_features(model, s.crops, config, device, precision, mirror=True).flatten(0, 1)
                          for s in sets])

    def twice(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.repeat(array, 2, axis=0))

    targets = torch.cat([twice(s.reference) for s in sets])
    labels = {f: torch.cat([twice(getattr(s, f)) for s in sets]) for f in ("age", "gender", "ethnicity")}
    return features, targets, labels


def refit_attribute_heads(weights: str | Path, out: str | Path, reference: str | Path, data_dir: Path, cache_dir: Path,
                          epochs: int = 4, lr: float = 1e-3, label_weight: float = 0.0, seed: int = 0,
                          device: str = "cpu") -> dict[str, Any]:
    """Refit the age, gender and ethnicity heads of ``weights`` towards ``reference``'s
    predictions on the training faces, and write the weights with them to ``out`` (may be
    ``weights`` itself); the config's validation figures are recomputed, and the settings are
    recorded under ``training.attribute_heads`` (replacing an earlier refit's record, whose
    heads these replace). Features are computed in the precision the weights' config runs in
    (``effective_precision``). Returns a summary: the settings, the held-out UTKFace figures
    before and after (utk_val) and the new validation headline."""
    model, config = load_model(weights, device=device)
    splits = build_splits(Path(data_dir), Path(cache_dir), config.input_size)
    attach_reference(splits, reference, config, cache_dir)
    names = [name for name in TRAINING_SETS if name in splits and len(splits[name])]
    sets = [splits[name] for name in names]
    if not sets:
        raise ValueError(f"{data_dir}: no training faces to refit the attribute heads on")
    held_out = splits["utk_val"]
    if not len(held_out):
        raise ValueError(f"{data_dir}: no held-out UTKFace faces (utk_val) to measure the attribute heads on")
    # The features of the precision the weights run in, as the figures below are measured.
    precision = effective_precision(config, device)
    features, targets, labels = training_samples(model, config, sets, device, precision)
    start = {name: model.head_parameters(name) for name in REFERENCE_HEADS}
    before = attribute_figures(predict_cached(model, held_out.crops, config, device), held_out)
    generator = torch.Generator().manual_seed(seed)
    refitted = refit_heads(start, features, targets, labels, label_weight, epochs, lr, generator=generator)
    for name, (weight, bias) in refitted.items():
        model.set_head(name, weight, bias)

    held_out_splits = {name: split for name, split in splits.items() if name.endswith("_val")}
    report = evaluate_splits(model, config, held_out_splits, device)
    summary = {
        "reference": str(resolve_weights(reference)),
        "epochs": epochs, "lr": lr, "label_weight": label_weight, "seed": seed, "precision": precision,
        "samples": int(len(features)), "sets": names,
        "utk_val_before": before,
        "utk_val_after": {k: report["utkface"][k] for k in before},
    }
    training = {**config.training, "attribute_heads": summary}
    metrics = {"validation": report, "summary": headline(report)}
    save_model(model, config.with_updates(training=training, metrics=metrics), out)
    return {**summary, "validation": metrics["summary"]}
