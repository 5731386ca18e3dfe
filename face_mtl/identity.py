"""Identity from embeddings: similarity, calibrated same-person verdicts, ranking, grouping.

Pure functions over numpy arrays of identity embeddings (one row per face, float, any width D;
the network's are L2-normalised, 128 wide). Similarity is cosine similarity, in -1..1: 1 for
the same direction, about 0 for unrelated faces. Two faces are called the same person when
their similarity is at least the verdict threshold, which is calibrated on pairs of people the
network never saw in training (``calibrate``) and stored in the weights' config.json under
``verification``. Grouping a folder into people (``cluster``) has its own threshold,
``grouping_threshold``, calibrated on simulated folders of the same people
(``choose_grouping_threshold``): the cut that judges one pair best is not the one that groups
a folder best. Bigger folders group best at a higher cut, so there is also one threshold per
folder size (``choose_grouping_thresholds_by_size``).
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
    return _cut(_average_linkage(embeddings), threshold, len(embeddings))


def _average_linkage(embeddings: np.ndarray) -> np.ndarray | None:
    """scipy's average-linkage tree of N embeddings on cosine distance (None when N < 2)."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    if len(embeddings) < 2:
        return None
    distances = 1.0 - similarity_matrix(embeddings, embeddings).astype(np.float64)
    np.fill_diagonal(distances, 0.0)
    return linkage(squareform(np.clip((distances + distances.T) / 2, 0.0, 2.0), checks=False), method="average")


def _cut(tree: np.ndarray | None, threshold: float, count: int) -> np.ndarray:
    """Labels of ``count`` faces from cutting ``tree`` at similarity ``threshold``, biggest group first."""
    from scipy.cluster.hierarchy import fcluster

    if tree is None:
        return np.zeros(count, np.int64)
    raw = fcluster(tree, t=1.0 - threshold, criterion="distance")
    groups = sorted(np.unique(raw), key=lambda g: (-(raw == g).sum(), int(np.argmax(raw == g))))
    relabel = {g: k for k, g in enumerate(groups)}
    return np.array([relabel[g] for g in raw], np.int64)


def pair_precision_recall(truth: np.ndarray, found: np.ndarray) -> tuple[float, float]:
    """Pairwise precision and recall of a grouping: of the pairs of faces put in one group,
    the share that are the same person, and of the same-person pairs, the share put together
    (N true labels, N found labels; precision is 1 when no pair is put together)."""
    truth, found = np.asarray(truth), np.asarray(found)
    upper = np.triu_indices(len(truth), k=1)
    same_truth = (truth[:, None] == truth[None, :])[upper]
    same_found = (found[:, None] == found[None, :])[upper]
    together = (same_truth & same_found).sum()
    precision = together / same_found.sum() if same_found.any() else 1.0
    recall = together / same_truth.sum() if same_truth.any() else 1.0
    return float(precision), float(recall)


# Thresholds of ``cluster`` candidates for grouping: every 0.02 in -0.2..0.9.
GROUPING_CANDIDATES = np.round(np.arange(-0.2, 0.9001, 0.02), 2)
# Folder sizes (faces) that get their own grouping threshold: up to 30, 31-100, over 100.
# Bigger folders need a higher cut: average linkage over more people meets more look-alikes
# (shipped weights, 60 simulated folders of held-out CelebA people: best cut 0.22 for 2-10
# people, 0.38 for 10-25, 0.46 for 25-50, where 0.26 gives them F1 0.29 instead of 0.44).
GROUPING_FACE_LIMITS = (30, 100)


def simulate_folders(
    embeddings: np.ndarray,
    identities: np.ndarray,
    folders: int,
    people: tuple[int, int],
    photos: tuple[int, int],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Group ``folders`` simulated folders, each of a random ``people`` range (inclusive) of the
    identities with a random ``photos`` range of faces each, at every GROUPING_CANDIDATES cut.
    Returns (faces per folder: F, pairwise F1, precision and recall: F x candidates x 3)."""
    embeddings, identities = normalize(embeddings), np.asarray(identities)
    usable = _people_with(identities, photos[0])
    if len(usable) < people[0]:
        raise ValueError(f"{len(usable)} people with {photos[0]}+ faces: too few to simulate folders of {people[0]}")
    sizes = np.zeros(folders, np.int64)
    scores = np.zeros((folders, len(GROUPING_CANDIDATES), 3))
    for folder in range(folders):
        chosen = rng.choice(usable, size=min(len(usable), rng.integers(people[0], people[1] + 1)), replace=False)
        rows = np.concatenate([
            rng.choice(np.flatnonzero(identities == person),
                       size=min(int((identities == person).sum()), rng.integers(photos[0], photos[1] + 1)),
                       replace=False)
            for person in chosen
        ])
        sizes[folder] = len(rows)
        tree = _average_linkage(embeddings[rows])
        for k, threshold in enumerate(GROUPING_CANDIDATES):
            precision, recall = pair_precision_recall(identities[rows], _cut(tree, threshold, len(rows)))
            scores[folder, k] = (f1_of(precision, recall), precision, recall)
    return sizes, scores


def _people_with(identities: np.ndarray, photos: int) -> np.ndarray:
    """The identities that have at least ``photos`` faces."""
    names, counts = np.unique(identities, return_counts=True)
    return names[counts >= photos]


def _best_cut(scores: np.ndarray) -> dict[str, Any]:
    """The candidate cut of highest mean F1 over folders' ``scores`` (F x candidates x 3)."""
    mean = scores.mean(axis=0)
    # The middle of the best cuts, so that a plateau of equally good ones leaves margin both ways.
    tied = np.flatnonzero(mean[:, 0] >= mean[:, 0].max() - 1e-9)
    best = int(tied[len(tied) // 2])
    return {"threshold": float(GROUPING_CANDIDATES[best]), "f1": float(mean[best, 0]),
            "precision": float(mean[best, 1]), "recall": float(mean[best, 2]), "folders": len(scores)}


def f1_of(precision: float, recall: float) -> float:
    """Harmonic mean of ``precision`` and ``recall`` (0 when both are 0)."""
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def choose_grouping_threshold(
    embeddings: np.ndarray,
    identities: np.ndarray,
    folders: int = 200,
    people: tuple[int, int] = (2, 10),
    photos: tuple[int, int] = (2, 8),
    seed: int = 0,
) -> dict[str, Any]:
    """The ``cluster`` threshold that groups folders of these faces best.

    Simulates ``folders`` folders (``simulate_folders``: N x D embeddings, N identity labels),
    clusters each at every candidate threshold and returns the one of highest mean pairwise F1,
    with that mean and the mean pairwise precision and recall it gives:
    {"grouping_threshold", "grouping_f1", "grouping_precision", "grouping_recall",
    "grouping_folders"}.
    """
    _, scores = simulate_folders(embeddings, identities, folders, people, photos, np.random.default_rng(seed))
    best = _best_cut(scores)
    return {f"grouping_{key}": value for key, value in best.items()}


def choose_grouping_thresholds_by_size(
    embeddings: np.ndarray,
    identities: np.ndarray,
    folders: int = 240,
    people: tuple[tuple[int, int], ...] = ((2, 10), (10, 25), (25, 50)),
    photos: tuple[int, int] = (2, 8),
    limits: tuple[int, ...] = GROUPING_FACE_LIMITS,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """A ``cluster`` threshold per folder size.

    ``folders`` simulated folders (``simulate_folders``) are shared out over the ``people``
    ranges, so that small and big folders are both well sampled; a range that asks for more
    people than have ``photos[0]`` faces is left out, and one that reaches past them is cut to
    them. The folders are binned by their number of faces at ``limits`` and each bin gets its
    best cut (as ``choose_grouping_threshold``). Returns one dict per bin that received
    folders, smallest first: {"min_faces", "max_faces" (None for the last, unbounded bin),
    "threshold", "f1", "precision", "recall", "folders"}; what config.json stores as
    ``verification.grouping_by_faces``.
    """
    usable = len(_people_with(np.asarray(identities), photos[0]))
    ranges = [(low, high) for low, high in people if low <= usable] or [people[0]]
    if folders < len(ranges):
        raise ValueError(f"{folders} folders for {len(ranges)} ranges of people: at least one each")
    rng = np.random.default_rng(seed)
    simulated = [simulate_folders(embeddings, identities, folders // len(ranges) + (k < folders % len(ranges)),
                                  span, photos, rng)
                 for k, span in enumerate(ranges)]
    sizes = np.concatenate([faces for faces, _ in simulated])
    scores = np.concatenate([score for _, score in simulated])
    bins = []
    for lower, upper in zip((0, *limits), (*limits, None)):
        inside = (sizes > lower) & (sizes <= (upper if upper is not None else sizes.max()))
        if inside.any():
            bins.append({"min_faces": lower + 1, "max_faces": upper, **_best_cut(scores[inside])})
    return bins


def grouping_threshold(verification: Mapping[str, Any] | None, faces: int | None = None) -> tuple[float, str]:
    """(threshold, source) for ``cluster`` from a config's ``verification`` dict.

    For a folder of ``faces`` faces, the threshold calibrated for folders of that size
    (``grouping_by_faces``; beyond the largest size calibrated, the largest's) when there is
    one; else its grouping_threshold and "calibrated for grouping" when calibrated so; else the
    verdict threshold (``verdict_threshold``)."""
    by_size = (verification or {}).get("grouping_by_faces") or []
    if faces is not None and by_size:
        chosen = next((b for b in by_size if b["max_faces"] is None or faces <= b["max_faces"]), by_size[-1])
        return float(chosen["threshold"]), f"calibrated for grouping folders of {_size_range(chosen)} faces"
    if verification and verification.get("grouping_threshold") is not None:
        return float(verification["grouping_threshold"]), "calibrated for grouping"
    return verdict_threshold(verification)


def _size_range(size_bin: Mapping[str, Any]) -> str:
    """"up to 30", "31-100" or "over 100": the folder sizes a ``grouping_by_faces`` bin covers."""
    lower, upper = size_bin["min_faces"], size_bin["max_faces"]
    if upper is None:
        return f"over {lower - 1}"
    return f"up to {upper}" if lower <= 1 else f"{lower}-{upper}"
