"""The exported identity embedding head: the trained one, or a closed-form projection of the
backbone's pooled features fitted on the training people, whichever verifies best.

The CosFace-trained projection learns the few hundred training people rather than faces in
general: on people never trained on, cosine similarity of the pooled backbone features
verifies better (0.795 against 0.760 with run 3's weights). Two closed-form heads keep the
embedding small: the leading principal axes of those features (PCA), and Fisher's
discriminant axes over the training people (LDA, shrinkage chosen by cross-validation over
those people). With run 7's weights, held-out people verified at 0.816 with LDA against
0.792 with the distilled head and 0.790 with PCA (training/HISTORY.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..config import ModelConfig
from ..data.sets import CropSet, identity_faces
from ..evaluate import (
    PairScores,
    cached_features,
    evaluate_splits,
    pair_scores,
    verification_accuracy,
    verification_calibration,
    verification_pairs,
    verification_report,
)
from ..model import FaceMTLNet
from .settings import IDENTITY_HEADS as HEADS

# LDA shrinkage candidates (multiples of the mean within-person variance); 1.0 won on run 7.
SHRINKAGES = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
FOLDS = 4  # cross-validation folds over the training people, for the LDA shrinkage


@dataclass(frozen=True)
class IdentityHead:
    """One candidate embedding head: ``weight`` (E x F) and ``bias`` (E) over the pooled
    backbone features, with how it was fitted (``detail``, JSON-ready)."""

    name: str
    weight: torch.Tensor
    bias: torch.Tensor
    detail: dict[str, Any] = field(default_factory=dict)


def pca_projection(features: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight (size x F) and bias (size) mapping features to their ``size`` leading principal
    components (centred, not whitened). Rows beyond the sample count stay zero."""
    features = features.double()
    mean = features.mean(dim=0)
    _, _, axes = torch.linalg.svd(features - mean, full_matrices=False)
    weight = torch.zeros(size, features.shape[1], dtype=torch.float64)
    kept = min(size, axes.shape[0])
    weight[:kept] = axes[:kept]
    return weight.float(), (-weight @ mean).float()


def lda_projection(
    features: torch.Tensor, identities: np.ndarray, size: int, regularisation: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight (size x F) and bias (size) mapping features to their ``size`` leading Fisher
    discriminant axes over ``identities``: the within-person scatter is whitened, then the
    axes along which people's mean features differ most are kept. ``regularisation`` adds
    that multiple of the mean within-person variance to every direction first, so that
    directions seen in few photos are not blown up.

    With run 7's weights (training/HISTORY.md), 4-fold cross-validation over the CelebA training
    people chose 1.0 among 0.01-3.0 (0.848; 3.0: 0.847), and held-out people then verified
    at 0.816 against 0.792 for the distilled head and 0.790 for PCA
    (``python bench/identity_heads.py``).
    """
    features = features.double()
    mean = features.mean(dim=0)
    centred = features - mean
    people, index = np.unique(np.asarray(identities), return_inverse=True)
    index = torch.from_numpy(index)
    sums = torch.zeros(len(people), features.shape[1], dtype=torch.float64).index_add_(0, index, centred)
    means = sums / torch.bincount(index, minlength=len(people)).double()[:, None]
    within = centred - means[index]
    within_scatter = within.T @ within / len(features)
    between_scatter = means.T @ means / len(people)
    shrink = regularisation * torch.trace(within_scatter) / within_scatter.shape[0]
    variances, axes = torch.linalg.eigh(within_scatter + shrink * torch.eye(features.shape[1], dtype=torch.float64))
    whiten = axes / variances.sqrt()
    spread, directions = torch.linalg.eigh(whiten.T @ between_scatter @ whiten)
    kept = torch.argsort(spread, descending=True)[: min(size, features.shape[1])]
    weight = torch.zeros(size, features.shape[1], dtype=torch.float64)
    weight[: len(kept)] = (whiten @ directions[:, kept]).T
    return weight.float(), (-weight @ mean).float()


def ridge_projection(
    features: torch.Tensor, targets: torch.Tensor, strength: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight (T x F) and bias (T) of the least-squares map from ``features`` (N x F) to
    ``targets`` (N x T, e.g. centred teacher descriptors), with ``strength`` times the mean
    feature variance added to every direction: a closed-form head taught by a teacher. Its
    outputs are centred over ``features`` (cosine similarity is read from them)."""
    features, targets = features.double(), targets.double()
    mean = features.mean(dim=0)
    centred = features - mean
    gram = centred.T @ centred
    ridge = strength * torch.trace(gram) / gram.shape[0] * torch.eye(gram.shape[0], dtype=gram.dtype)
    weight = torch.linalg.solve(gram + ridge, centred.T @ targets).T
    return weight.float(), (-weight @ mean).float()


def lda_shrinkage(
    features: torch.Tensor, identities: np.ndarray, size: int, shrinkages=SHRINKAGES, folds: int = FOLDS, seed: int = 0
) -> tuple[float, dict[float, float]]:
    """(chosen shrinkage, mean cross-validated accuracy of each): people are split into
    ``folds`` groups; LDA is fitted on the others' photos and verifies pairs of the group's
    (one view, 3000 same and 3000 different pairs a fold). Only the given people are used."""
    people = np.unique(identities)
    if len(people) < 2 * folds:
        raise ValueError(f"{len(people)} people are too few for {folds}-fold cross-validation")
    order = np.random.default_rng(seed).permutation(people)
    scores: dict[float, list[float]] = {shrink: [] for shrink in shrinkages}
    for fold, test_people in enumerate(np.array_split(order, folds)):
        test = np.isin(identities, test_people)
        pairs, same = verification_pairs(identities[test], 3000, seed + fold)
        for shrink in shrinkages:
            weight, bias = lda_projection(features[~test], identities[~test], size, shrink)
            embedded = F.normalize(features[test] @ weight.T + bias, dim=1).numpy()
            similarity = (embedded[pairs[:, 0]] * embedded[pairs[:, 1]]).sum(axis=1)
            scores[shrink].append(verification_accuracy(similarity, same)["accuracy"])
    means = {shrink: float(np.mean(values)) for shrink, values in scores.items()}
    return max(means, key=means.__getitem__), means


def identity_heads(model: FaceMTLNet, people: CropSet, device: str, names=HEADS) -> list[IdentityHead]:
    """The candidate heads ``names`` (of HEADS) for ``model``, fitted on ``people`` (training
    people with identity labels): its own trained head, PCA and LDA of its features."""
    unknown = set(names) - set(HEADS)
    if unknown:
        raise ValueError(f"unknown identity heads {sorted(unknown)}: choose among {', '.join(HEADS)}")
    config = model.config
    features = cached_features(model, people.crops, config, device)[:, 0] if {"pca", "lda"} & set(names) else None
    heads = []
    for name in names:
        if name == "trained":
            heads.append(IdentityHead(name, *model.head_parameters("embedding")))
        elif name == "pca":
            heads.append(IdentityHead(name, *pca_projection(features, config.embedding_size)))
        else:
            chosen, scores = lda_shrinkage(features, people.identity, config.embedding_size)
            heads.append(IdentityHead(name, *lda_projection(features, people.identity, config.embedding_size, chosen),
                                      {"shrinkage": chosen, "cross_validated": {str(k): round(v, 4) for k, v in scores.items()}}))
    return heads


def set_identity_head(model: FaceMTLNet, head: IdentityHead) -> None:
    """Replace the model's embedding head, in place, by ``head``."""
    model.set_head("embedding", head.weight, head.bias)


def choose_identity_head(
    model: FaceMTLNet, config: ModelConfig, people: CropSet, held_out: CropSet, device: str, kind: str = "best"
) -> tuple[IdentityHead, PairScores, dict[str, Any]]:
    """Fit the candidate heads on ``people`` (training people), score each on pairs of
    ``held_out`` people (never trained on; ``face-mtl eval``'s pairs), and leave in ``model``
    the best one (``kind="best"``) or the one named. Returns (the head, its pair scores, a
    JSON-ready summary: every candidate's verification accuracy and the head's detail)."""
    if kind != "best" and kind not in HEADS:
        raise ValueError(f"identity head must be best or one of {', '.join(HEADS)}, not {kind!r}")
    names = (kind,)
    if kind == "best":
        # LDA's shrinkage is cross-validated over people: a handful of people cannot choose it.
        enough = len(np.unique(people.identity)) >= 2 * FOLDS
        names = HEADS if enough else tuple(name for name in HEADS if name != "lda")
    candidates = identity_heads(model, people, device, names)
    scored = []
    for head in candidates:
        set_identity_head(model, head)
        scores = pair_scores(model, config, held_out, device)
        scored.append((verification_report(scores)["accuracy"], head, scores))
    # Ties keep the earlier candidate: the trained head, then PCA, then LDA.
    accuracy, head, scores = max(scored, key=lambda item: item[0])
    set_identity_head(model, head)
    summary = {"identity_head": head.name, **head.detail,
               "verification": {candidate.name: round(value, 4) for value, candidate, _ in scored}}
    return head, scores, summary


@dataclass(frozen=True)
class FittedHead:
    """What exporting weights with a chosen identity head needs: the head's summary
    (``choose_identity_head``; config.json's ``training.identity_head``), every validation
    figure with it, and its same-person and grouping calibration (``verification``)."""

    summary: dict[str, Any]
    report: dict[str, Any]
    verification: dict[str, Any]


def fit_identity_head(model: FaceMTLNet, config: ModelConfig, splits: dict[str, CropSet], device: str,
                      kind: str = "best") -> FittedHead:
    """Choose the identity head ``kind`` of ``model`` (in place) on ``build_splits``' CelebA
    training people (``identity_faces``), then validate and calibrate it on the held-out splits
    (names ending in _val): the last step of training and of ``face-mtl identity-head`` alike."""
    held_out = {name: split for name, split in splits.items() if name.endswith("_val")}
    _, identity, summary = choose_identity_head(model, config, identity_faces(splits), held_out["celeba_val"],
                                                device, kind)
    report = evaluate_splits(model, config, held_out, device, identity=identity)
    return FittedHead(summary, report, verification_calibration(identity))
