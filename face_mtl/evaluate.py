"""Validation metrics (pure functions) and ``evaluate_weights`` behind ``face-mtl eval``.

Protocols: FER+ majority vote (ties, unknown and not-a-face excluded); UTKFace age MAE,
gender and ethnicity accuracy; identity verification accuracy on same/different pairs of
people never trained on, with the threshold chosen by 10-fold cross-validation (LFW style).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import EMOTIONS

VERIFICATION_PAIRS = 3000  # of each kind, same and different person
VALIDATION_SPLITS = ("ferplus_val", "ferplus_tight_val", "utk_val", "celeba_val", "celeba_wild_val")  # what evaluate_splits reads


def emotion_metrics(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Accuracy, per-class recall and confusion matrix (rows true, columns predicted).

    ``probabilities`` N x 8 (EMOTIONS order); ``labels`` N EMOTIONS indices, -1 = excluded.
    """
    keep = labels >= 0
    truth, predicted = labels[keep], probabilities[keep].argmax(axis=1)
    k = len(EMOTIONS)
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    totals = confusion.sum(axis=1)
    recall = {
        EMOTIONS[c]: (float(confusion[c, c] / totals[c]) if totals[c] else None) for c in range(k)
    }
    present = [r for r in recall.values() if r is not None]
    return {
        "accuracy": float((truth == predicted).mean()) if len(truth) else None,
        # The mean class recall: what a classifier that leans towards frequent classes loses.
        "balanced_accuracy": float(np.mean(present)) if present else None,
        "count": int(len(truth)),
        "recall": recall,
        "confusion": {"labels": list(EMOTIONS), "matrix": confusion.tolist()},
    }


def age_mae(predicted_years: np.ndarray, true_years: np.ndarray) -> float:
    return float(np.abs(np.asarray(predicted_years) - np.asarray(true_years)).mean())


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(probabilities).argmax(axis=1) == np.asarray(labels)).mean())


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve: the chance that a random positive scores above a random
    negative (ties count half; Mann-Whitney). None without both kinds."""
    scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return None
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def wild_figures(outputs: dict[str, np.ndarray], faces) -> dict[str, Any]:
    """Gender accuracy (CelebA's ``male``) and the AUC of P(happiness) against CelebA's
    ``smiling`` on a CropSet of celeba_wild faces (``predict_cached`` outputs)."""
    labelled = faces.smiling >= 0
    happiness = outputs["emotion"][:, EMOTIONS.index("happiness")]
    return {
        "gender_accuracy": accuracy(outputs["gender"], faces.gender),
        "smiling_auc": roc_auc(happiness[labelled], faces.smiling[labelled] == 1),
        "count": int(len(faces)),
    }


def verification_pairs(identities: np.ndarray, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``count`` same-person and ``count`` different-person index pairs; (pairs P x 2, same P)."""
    rng = np.random.default_rng(seed)
    same = []
    for identity in np.unique(identities):
        members = np.flatnonzero(identities == identity)
        if len(members) > 1:
            i, j = np.triu_indices(len(members), k=1)
            same.append(np.stack([members[i], members[j]], axis=1))
    same_pairs = np.concatenate(same) if same else np.zeros((0, 2), np.int64)
    if len(same_pairs) > count:
        same_pairs = same_pairs[rng.choice(len(same_pairs), count, replace=False)]
    different = []
    if len(np.unique(identities)) < 2:
        raise ValueError("verification needs at least two people")
    while len(different) < len(same_pairs):
        a, b = rng.integers(0, len(identities), 2)
        if identities[a] != identities[b]:
            different.append((a, b))
    different_pairs = np.array(different, np.int64).reshape(-1, 2)
    pairs = np.concatenate([same_pairs, different_pairs])
    is_same = np.concatenate([np.ones(len(same_pairs), bool), np.zeros(len(different_pairs), bool)])
    return pairs, is_same


def best_threshold(similarities: np.ndarray, is_same: np.ndarray) -> float:
    candidates = np.unique(similarities)
    scores = [((similarities >= t) == is_same).mean() for t in candidates]
    return float(candidates[int(np.argmax(scores))])


def verification_accuracy(similarities: np.ndarray, is_same: np.ndarray, folds: int = 10, seed: int = 0) -> dict[str, float]:
    """Accuracy of 'same person iff similarity >= threshold', the threshold fitted on the other folds."""
    order = np.random.default_rng(seed).permutation(len(similarities))
    correct = np.zeros(len(similarities), bool)
    thresholds = []
    for fold in np.array_split(order, folds):
        rest = np.setdiff1d(order, fold)
        threshold = best_threshold(similarities[rest], is_same[rest])
        thresholds.append(threshold)
        correct[fold] = (similarities[fold] >= threshold) == is_same[fold]
    return {"accuracy": float(correct.mean()), "threshold": float(np.mean(thresholds)), "pairs": int(len(is_same))}


def cached_inputs(crops: np.ndarray, config, device: str = "cpu", batch: int = 256):
    """Network input batches of cached margin crops, seen through the tight (inference) box."""
    from .data.views import eval_batch

    for start in range(0, len(crops), batch):
        chunk = torch.from_numpy(crops[start : start + batch])
        x = eval_batch(chunk, config.input_size, config.mean, config.std).to(device)
        yield x if device == "cpu" else x.contiguous(memory_format=torch.channels_last)


def predict_cached(model, crops: np.ndarray, config, device: str = "cpu", batch: int = 256) -> dict[str, np.ndarray]:
    """Network outputs for cached margin crops, seen through the tight (inference) box."""
    from .model import predict

    parts = []
    model.eval()
    with torch.inference_mode():
        for x in cached_inputs(crops, config, device, batch):
            parts.append({k: v.cpu() for k, v in predict(model, x, flip=config.test_time_flip).items()})
    return {k: torch.cat([p[k] for p in parts]).numpy() for k in parts[0]}


def cached_features(model, crops: np.ndarray, config, device: str = "cpu", precision: str = "fp32",
                    mirror: bool = False, batch: int = 256) -> torch.Tensor:
    """N x V x F float32 CPU pooled backbone features of cached margin crops, seen through the
    tight (inference) box: V = 1 view, or 2 with ``mirror`` (the crop, then its mirror image).
    ``precision`` "bf16" computes them under bf16 autocast on a CPU (faster where the CPU has
    native bf16; the features differ in the third digit)."""
    bf16 = precision == "bf16" and device == "cpu"
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    views = 2 if mirror else 1
    parts = [torch.zeros((0, views, model.heads["age"].in_features))]  # the heads' input width
    model.eval()
    with torch.inference_mode(), autocast:
        for x in cached_inputs(crops, config, device, batch):
            if mirror:
                x = torch.cat([x, torch.flip(x, dims=[3])])
            features = model.backbone(x).float().cpu()
            parts.append(features.reshape(views, -1, features.shape[1]).transpose(0, 1))
    return torch.cat(parts)


def attribute_figures(outputs: dict[str, np.ndarray], faces) -> dict[str, float]:
    """Age MAE (years) and gender and ethnicity accuracy of ``predict_cached`` outputs for a
    labelled CropSet (the UTKFace validation figures)."""
    return {
        "age_mae": age_mae(outputs["age"], faces.age),
        "gender_accuracy": accuracy(outputs["gender"], faces.gender),
        "ethnicity_accuracy": accuracy(outputs["ethnicity"], faces.ethnicity),
    }


# Age bands (years, inclusive) for the per-group figures: children, teenagers, adults by decades.
AGE_BANDS = ((0, 12), (13, 19), (20, 39), (40, 59), (60, 200))


def _group_row(outputs: dict[str, np.ndarray], faces, index: np.ndarray) -> dict[str, float]:
    if not len(index):
        return {"count": 0}
    picked = {k: outputs[k][index] for k in ("age", "gender", "ethnicity")}
    figures = attribute_figures(picked, faces.subset(index))
    return {"count": int(len(index)), **figures,
            "gender_error": 1.0 - figures["gender_accuracy"],
            "ethnicity_error": 1.0 - figures["ethnicity_accuracy"]}


def utkface_groups(outputs: dict[str, np.ndarray], faces, config) -> dict[str, dict[str, dict[str, float]]]:
    """Age MAE (years), gender and ethnicity accuracy and error (0..1) of ``predict_cached``
    outputs per UTKFace group: by true gender, true ethnicity (``config``'s label names) and
    true age band (AGE_BANDS, keyed "0-12" ... "60+"). Each row holds its face count."""
    age = np.asarray(faces.age)
    gender = np.asarray(faces.gender)
    ethnicity = np.asarray(faces.ethnicity)
    bands = {}
    for low, high in AGE_BANDS:
        name = f"{low}+" if high >= 200 else f"{low}-{high}"
        bands[name] = _group_row(outputs, faces, np.flatnonzero((age >= low) & (age <= high)))
    return {
        "gender": {label: _group_row(outputs, faces, np.flatnonzero(gender == k))
                   for k, label in enumerate(config.genders)},
        "ethnicity": {label: _group_row(outputs, faces, np.flatnonzero(ethnicity == k))
                      for k, label in enumerate(config.ethnicities)},
        "age": bands,
    }


def ferplus_val_labels(data_dir: Path) -> np.ndarray:
    """Majority-protocol labels (-1 = excluded) of the cached FER+ validation images, in
    cache order, from the raw votes (unknown and not-face votes included)."""
    from .data.sets import ferplus_majority, load_ferplus

    return ferplus_majority(load_ferplus(Path(data_dir) / "ferplus" / "valid.npz").votes)


@dataclass(frozen=True)
class PairScores:
    """Cosine similarities of the identity embedding on same/different pairs of held-out people
    (``verification_pairs``): the one embedding pass that verification and calibration share."""

    similarities: np.ndarray  # P float32
    is_same: np.ndarray  # P bool
    people: int
    images: int
    seed: int
    # The faces' embeddings (N x D) and identities (N): grouping is calibrated on them.
    embeddings: np.ndarray | None = None
    identities: np.ndarray | None = None


def pair_scores(model, config, people, device: str = "cpu", seed: int = 0) -> PairScores:
    """Embed a CropSet of people never trained on and score VERIFICATION_PAIRS same-person and
    as many different-person pairs (seeded)."""
    return scores_of_embeddings(predict_cached(model, people.crops, config, device)["embedding"], people.identity, seed)


def scores_of_embeddings(embeddings: np.ndarray, identities: np.ndarray, seed: int = 0) -> PairScores:
    """``pair_scores`` of embeddings already computed (N x D unit rows, N identities)."""
    identities = np.asarray(identities)
    pairs, is_same = verification_pairs(identities, VERIFICATION_PAIRS, seed)
    similarities = (embeddings[pairs[:, 0]] * embeddings[pairs[:, 1]]).sum(axis=1)
    return PairScores(similarities, is_same, int(len(np.unique(identities))), int(len(identities)), seed,
                      embeddings=embeddings, identities=identities)


def evaluate_splits(model, config, splits: dict, device: str = "cpu", fer_labels: np.ndarray | None = None,
                    identity: PairScores | None = None) -> dict[str, Any]:
    """Every validation metric from the *_val CropSets of ``build_splits``.

    ``fer_labels``: FER+ majority labels of the cached validation images (ferplus_val_labels);
    without them the majority is taken over the 8 emotions' votes alone (training logs).
    ``identity``: the pair scores of ``splits["celeba_val"]`` when already computed.
    """
    fer = splits["ferplus_val"]
    fer_out = predict_cached(model, fer.crops, config, device)
    if fer_labels is None:
        from .data.sets import majority_vote

        # Cached vote shares are in EMOTIONS order already.
        fer_labels = majority_vote(fer.emotion)
    utk = splits["utk_val"]
    utk_out = predict_cached(model, utk.crops, config, device)
    framings = {}
    if "ferplus_tight_val" in splits:  # the same images, framed by MTCNN's tight box
        tight_out = predict_cached(model, splits["ferplus_tight_val"].crops, config, device)
        framings["ferplus_tight"] = emotion_metrics(tight_out["emotion"], fer_labels)
    wild = {}
    if len(splits.get("celeba_wild_val", ())):  # small colour in-the-wild faces of people never trained on
        people = splits["celeba_wild_val"]
        wild_out = predict_cached(model, people.crops, config, device)
        wild_scores = scores_of_embeddings(wild_out["embedding"], people.identity)
        wild["celeba_wild"] = {**wild_figures(wild_out, people), "identity": verification_report(wild_scores)}
    return {
        "ferplus": emotion_metrics(fer_out["emotion"], fer_labels),
        **framings,
        "utkface": {**attribute_figures(utk_out, utk), "count": int(len(utk))},
        "utkface_groups": utkface_groups(utk_out, utk, config),
        "identity": verification_report(identity or pair_scores(model, config, splits["celeba_val"], device)),
        **wild,
    }


def verification_report(scores: PairScores) -> dict[str, Any]:
    """10-fold cross-validated verification accuracy (LFW style) of pair scores."""
    return {**verification_accuracy(scores.similarities, scores.is_same), "people": scores.people}


def verification_calibration(scores: PairScores, split: str = "celeba_val",
                             grouping_by_size: bool = True) -> dict[str, Any]:
    """The same-person threshold of the identity embedding, calibrated on held-out people.

    ``scores``: ``pair_scores`` of a CropSet of people never trained on
    (``build_splits(...)["celeba_val"]``). The threshold is the one of highest accuracy on
    those pairs (``identity.calibrate``); the dict also holds its accuracy, false-accept and
    false-reject rates, the 10-fold cross-validated accuracy (a threshold fitted on other
    pairs: the fairer figure) and where the pairs came from. When ``scores`` carries the
    faces' embeddings, it also holds the threshold that groups simulated folders of those people
    best (``identity.choose_grouping_threshold``) and, with ``grouping_by_size``, one threshold
    per folder size (``identity.choose_grouping_thresholds_by_size``, ``grouping_by_faces``),
    which ``face-mtl people`` uses. It is what config.json stores under ``verification``.
    """
    from .identity import calibrate, choose_grouping_threshold, choose_grouping_thresholds_by_size

    grouping: dict[str, Any] = {}
    if scores.embeddings is not None and scores.identities is not None:
        grouping = choose_grouping_threshold(scores.embeddings, scores.identities, seed=scores.seed)
        if grouping_by_size:
            grouping["grouping_by_faces"] = choose_grouping_thresholds_by_size(
                scores.embeddings, scores.identities, seed=scores.seed)
    return calibrate(
        scores.similarities, scores.is_same,
        cross_validated_accuracy=verification_accuracy(scores.similarities, scores.is_same)["accuracy"],
        split=split, people=scores.people, images=scores.images, seed=scores.seed,
        method="highest accuracy on same/different pairs of people never trained on; same iff cosine >= threshold",
        **grouping,
    )


def calibrate_weights(weights, data_dir: Path, cache_dir: Path, device: str | None = None) -> dict[str, Any]:
    """(Re)calibrate a local weights folder: compute ``verification_calibration`` on the
    held-out CelebA people and rewrite the folder's config.json with it. Returns the calibration.

    Builds the crop cache in ``cache_dir`` when missing (MTCNN over the data: minutes).
    """
    from .analyzer import default_device
    from .data.sets import build_splits
    from .model import inference_runner
    from .weights import WeightsNotFoundError, load_model, resolve_weights, write_config

    if weights is not None and not Path(weights).exists():
        raise WeightsNotFoundError(f"{weights}: calibration rewrites a local weights folder; no such folder")
    device = device or default_device()
    folder = resolve_weights(weights)
    model, config = load_model(folder, device=device)
    people = build_splits(Path(data_dir), Path(cache_dir), config.input_size, names=("celeba_val",))["celeba_val"]
    # Through the same runner as FaceAnalyzer, so the threshold fits the embeddings users get.
    calibration = verification_calibration(pair_scores(inference_runner(model, config, device), config, people, device))
    write_config(folder, config.with_updates(verification=calibration))
    return calibration


def headline(report: dict[str, Any]) -> dict[str, float]:
    """The five figures the targets are stated in, and FER+ on tight crops where measured."""
    figures = {
        "ferplus_accuracy": report["ferplus"]["accuracy"],
        "age_mae": report["utkface"]["age_mae"],
        "gender_accuracy": report["utkface"]["gender_accuracy"],
        "ethnicity_accuracy": report["utkface"]["ethnicity_accuracy"],
        "verification_accuracy": report["identity"]["accuracy"],
    }
    if "ferplus_tight" in report:  # expression on MTCNN-framed faces, beside the targets
        figures["ferplus_tight_accuracy"] = report["ferplus_tight"]["accuracy"]
    if report["ferplus"].get("balanced_accuracy") is not None:
        figures["ferplus_balanced_accuracy"] = report["ferplus"]["balanced_accuracy"]
    if "celeba_wild" in report:
        wild = report["celeba_wild"]
        figures["wild_verification_accuracy"] = wild["identity"]["accuracy"]
        figures["wild_gender_accuracy"] = wild["gender_accuracy"]
        figures["wild_smiling_auc"] = wild["smiling_auc"]
    return figures


def evaluate_pipeline(analyzer, data_dir: Path, val_fraction: float = 0.1) -> dict[str, Any]:
    """The shipped pipeline as users call it: FER+ validation images (48x48 grayscale) through
    ``predict_crops``, and UTKFace validation photos (with margins) through ``analyze``, so
    detection is part of it. Figures are given over photos with a face found, and with the
    others counted as wrong."""
    from tqdm import tqdm

    from .data.sets import ferplus_majority, list_utkface, split_of

    with np.load(Path(data_dir) / "ferplus" / "valid.npz") as data:
        pixels, votes = data["pixels"], data["votes"]
    labels = ferplus_majority(votes)
    keep = np.flatnonzero(labels >= 0)
    faces = analyzer.predict_crops(list(pixels[keep]))
    emotion = np.array([[f.emotions[e] for e in EMOTIONS] for f in faces])
    fer_accuracy = emotion_metrics(emotion, labels[keep])["accuracy"]

    items = [i for i in list_utkface(Path(data_dir) / "utkface" / "images") if split_of(i[0].name, val_fraction) == "val"]
    found, ages, genders, races = [], [], [], []
    for path, (age, gender, race) in tqdm(items, desc="UTKFace through analyze", unit="img"):
        result = analyzer.analyze(path)
        found.append(bool(result))
        if result:
            ages.append((result[0].age, age))
            genders.append(result[0].gender == ("female" if gender == 1 else "male"))
            races.append(analyzer.config.ethnicities.index(result[0].ethnicity) == race)
    ages_array = np.array(ages).reshape(-1, 2)
    photos = max(1, len(items))
    return {
        "ferplus_predict_crops_accuracy": fer_accuracy,
        "ferplus_count": int(len(keep)),
        "utkface_analyze": {
            "photos": len(items),
            "face_found_rate": float(np.mean(found)) if found else 0.0,
            # Over photos where a face was found:
            "age_mae": age_mae(ages_array[:, 0], ages_array[:, 1]) if len(ages) else None,
            "gender_accuracy": float(np.mean(genders)) if genders else None,
            "ethnicity_accuracy": float(np.mean(races)) if races else None,
            # Counting a photo without a detected face as a wrong answer:
            "gender_accuracy_misses_wrong": float(np.sum(genders)) / photos,
            "ethnicity_accuracy_misses_wrong": float(np.sum(races)) / photos,
        },
    }


def evaluate_weights(
    weights,
    data_dir: Path,
    cache_dir: Path,
    device: str | None = None,
    pipeline: bool = True,
    test_time_flip: bool | None = None,
    inference_precision: str | None = None,
    runtime: str = "auto",
) -> dict[str, Any]:
    """Load weights (path, Hub id or None for bundled) and report every metric as a dict.

    ``test_time_flip``, ``inference_precision``: override the weights' config (None: as
    config.json says). ``runtime``: the CPU runtime, as ``FaceAnalyzer``'s.
    """
    from .analyzer import FaceAnalyzer, default_device
    from .data.sets import build_splits, tight_found_rate
    from .model import effective_precision, inference_runner, precision_override, runner_runtime
    from .weights import load_model, resolve_weights

    device = device or default_device()
    folder = resolve_weights(weights)
    model, config = load_model(folder, device=device)
    if test_time_flip is not None:
        config = config.with_updates(test_time_flip=test_time_flip)
    inference_precision = precision_override(runtime, inference_precision)
    if inference_precision is not None:
        config = config.with_updates(inference_precision=inference_precision)
    # The validation splits only: evaluating never needs the training crops (detection on ~20,000 photos).
    splits = build_splits(Path(data_dir), Path(cache_dir), config.input_size, names=VALIDATION_SPLITS)
    # Measured through the same runner as FaceAnalyzer (bf16 where the config asks for it).
    runner = inference_runner(model, config, device, runtime)
    report = evaluate_splits(runner, config, splits, device, fer_labels=ferplus_val_labels(Path(data_dir)))
    if "ferplus_tight" in report:
        report["ferplus_tight"]["face_found_rate"] = tight_found_rate(Path(cache_dir))
    result = {"weights": str(folder), "backbone": config.backbone, "input_size": config.input_size,
              "test_time_flip": config.test_time_flip, "inference_precision": config.inference_precision,
              # What the figures were computed in: bf16 falls back to fp32 on CPUs without native bf16.
              "computed_precision": effective_precision(config, device), "runtime": runner_runtime(runner),
              "summary": headline(report), **report}
    if pipeline:
        result["pipeline"] = evaluate_pipeline(
            FaceAnalyzer(weights=folder, device=device, test_time_flip=config.test_time_flip,
                         inference_precision=config.inference_precision, runtime=runtime), Path(data_dir)
        )
    return result


def evaluate_utkface_groups(weights, data_dir: Path, cache_dir: Path, device: str | None = None,
                            runtime: str = "auto") -> dict[str, Any]:
    """The UTKFace validation figures overall and per group (``utkface_groups``) alone: only
    the UTKFace validation crops are built (detection on about 2,000 photos) when not cached."""
    from .analyzer import default_device
    from .data.sets import build_splits
    from .model import inference_runner, precision_override
    from .weights import load_model, resolve_weights

    device = device or default_device()
    folder = resolve_weights(weights)
    model, config = load_model(folder, device=device)
    precision = precision_override(runtime, None)
    if precision is not None:
        config = config.with_updates(inference_precision=precision)
    utk = build_splits(Path(data_dir), Path(cache_dir), config.input_size, names=("utk_val",))["utk_val"]
    outputs = predict_cached(inference_runner(model, config, device, runtime), utk.crops, config, device)
    return {"weights": str(folder), "utkface": {**attribute_figures(outputs, utk), "count": int(len(utk))},
            "utkface_groups": utkface_groups(outputs, utk, config)}
