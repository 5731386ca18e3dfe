"""Identity from embeddings: similarity, calibrated same-person verdicts, ranking, grouping.

Pure functions over numpy arrays of identity embeddings (one row per face, float, any width D;
the network's are L2-normalised, 128 wide). Similarity is cosine similarity, in -1..1: 1 for
the same direction, about 0 for unrelated faces. Two faces are called the same person when
their similarity is at least the verdict threshold, which is calibrated on pairs of people the
network never saw in training (``calibrate``) and stored in the weights' config.json under
``verification``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

# Used only when a weights folder carries no calibration (``face-mtl calibrate`` adds one). A
# generic guess for unit-length embeddings, not a measured operating point: verdicts made with
# it say so (threshold_source "default").
DEFAULT_THRESHOLD = 0.5


def normalize(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero); N x D -> N x D float32."""
    array = np.atleast_2d(np.asarray(embeddings, np.float32))
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.where(norms > 0, norms, 1.0)


def similarity_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of every row of ``a`` (N x D) with every row of ``b`` (M x D): N x M
    float32 in -1..1. Rows are normalised here, so unnormalised embeddings work too."""
    a, b = normalize(a), normalize(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"embeddings of different widths: {a.shape[1]} and {b.shape[1]}")
    return np.clip(a @ b.T, -1.0, 1.0)


def error_rates(similarities: np.ndarray, is_same: np.ndarray, threshold: float) -> dict[str, float]:
    """Accuracy, false-accept rate and false-reject rate of "same person iff similarity >=
    threshold" on labelled pairs (``similarities`` P floats, ``is_same`` P bools).

    FAR: share of different-person pairs called the same; FRR: share of same-person pairs
    called different (NaN when there are no pairs of that kind).
    """
    similarities = np.asarray(similarities, np.float64)
    is_same = np.asarray(is_same, bool)
    accepted = similarities >= threshold
    different = ~is_same
    return {
        "accuracy": float((accepted == is_same).mean()) if len(is_same) else float("nan"),
        "false_accept_rate": float(accepted[different].mean()) if different.any() else float("nan"),
        "false_reject_rate": float((~accepted[is_same]).mean()) if is_same.any() else float("nan"),
    }


def choose_threshold(similarities: np.ndarray, is_same: np.ndarray) -> float:
    """The threshold with the highest accuracy of "same iff similarity >= threshold" on these
    labelled pairs (P floats, P bools). Among equally accurate cuts the lowest one wins; the
    threshold sits midway between the two similarities it separates, so it does not hinge on
    one pair's exact value."""
    similarities = np.asarray(similarities, np.float64)
    is_same = np.asarray(is_same, bool)
    if len(similarities) == 0:
        raise ValueError("no pairs to choose a threshold from")
    order = np.argsort(similarities, kind="stable")
    values, same = similarities[order], is_same[order]
    # Cut k calls pairs order[k:] the same person: correct = different below + same at or above.
    different_below = np.concatenate([[0], np.cumsum(~same)])
    same_at_or_above = same.sum() - np.concatenate([[0], np.cumsum(same)])
    correct = different_below + same_at_or_above  # k = 0..P
    # A cut between two equal similarities cannot be made.
    valid = np.concatenate([[True], values[1:] > values[:-1], [True]])
    best = int(np.flatnonzero(valid & (correct == correct[valid].max()))[0])
    if best == 0:
        return float(values[0])
    if best == len(values):
        return float(np.nextafter(values[-1], np.inf))
    return float((values[best - 1] + values[best]) / 2)


def calibrate(similarities: np.ndarray, is_same: np.ndarray, **provenance: Any) -> dict[str, Any]:
    """The verdict threshold for labelled pairs (``choose_threshold``) with its error rates on
    them and the pair counts, plus ``provenance`` (e.g. split, people, seed): what goes under
    ``verification`` in config.json."""
    is_same = np.asarray(is_same, bool)
    threshold = choose_threshold(similarities, is_same)
    return {
        "threshold": threshold,
        **error_rates(similarities, is_same, threshold),
        "pairs": int(len(is_same)),
        "same_pairs": int(is_same.sum()),
        "different_pairs": int((~is_same).sum()),
        **provenance,
    }


def verdict_threshold(verification: Mapping[str, Any] | None) -> tuple[float, str]:
    """(threshold, source) from a config's ``verification`` dict: its calibrated threshold and
    "calibrated", or DEFAULT_THRESHOLD and "default" when there is none."""
    if verification and verification.get("threshold") is not None:
        return float(verification["threshold"]), "calibrated"
    return DEFAULT_THRESHOLD, "default"


def rank(query: np.ndarray, gallery: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gallery rows (M x D) from most to least similar to ``query`` (D): (order M ints,
    similarities M floats in that order). Ties keep gallery order."""
    similarities = similarity_matrix(np.asarray(query)[None, :], gallery)[0] if len(gallery) else np.zeros(0)
    order = np.argsort(-similarities, kind="stable")
    return order, similarities[order]


def cluster(embeddings: np.ndarray, threshold: float) -> np.ndarray:
    """Group faces (N x D embeddings) into people: agglomerative clustering with average
    linkage on cosine distance (1 - similarity), cut where the average similarity between two
    groups falls below ``threshold``. Returns N group labels 0..K-1, numbered biggest group
    first (ties: the group whose first face comes first)."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    count = len(embeddings)
    if count == 0:
        return np.zeros(0, np.int64)
    if count == 1:
        return np.zeros(1, np.int64)
    distances = 1.0 - similarity_matrix(embeddings, embeddings).astype(np.float64)
    np.fill_diagonal(distances, 0.0)
    condensed = squareform(np.clip((distances + distances.T) / 2, 0.0, 2.0), checks=False)
    raw = fcluster(linkage(condensed, method="average"), t=1.0 - threshold, criterion="distance")
    groups = sorted(np.unique(raw), key=lambda g: (-(raw == g).sum(), int(np.argmax(raw == g))))
    relabel = {g: k for k, g in enumerate(groups)}
    return np.array([relabel[g] for g in raw], np.int64)
