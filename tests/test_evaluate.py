"""Metrics against values computed by hand on a small fixture."""

from __future__ import annotations

import numpy as np

from face_mtl.config import EMOTIONS
from face_mtl.data.sets import (
    FERPLUS_COLUMNS,
    ferplus_majority,
    ferplus_votes_to_emotions,
    load_ferplus,
    majority_vote,
    read_ferplus,
)
from face_mtl.evaluate import (
    age_mae,
    emotion_metrics,
    ferplus_val_labels,
    roc_auc,
    verification_accuracy,
    verification_pairs,
)


def _votes(**counts) -> list[int]:
    return [counts.get(column, 0) for column in FERPLUS_COLUMNS]


def test_ferplus_majority_protocol():
    votes = np.array([
        _votes(happiness=7, neutral=3),  # happiness
        _votes(sadness=5, neutral=5),  # tie: excluded
        _votes(unknown=6, anger=4),  # unknown majority: excluded
        _votes(not_face=9, fear=1),  # not a face: excluded
        _votes(contempt=4, anger=3, disgust=3),  # contempt
    ])
    labels = ferplus_majority(votes)
    assert labels.tolist() == [EMOTIONS.index("happiness"), -1, -1, -1, EMOTIONS.index("contempt")]
    reordered = ferplus_votes_to_emotions(votes)
    assert reordered[0, EMOTIONS.index("happiness")] == 7 and reordered[0, EMOTIONS.index("neutral")] == 3
    # The same protocol over cached 8-emotion vote shares (EMOTIONS order).
    shares = reordered / reordered.sum(axis=1, keepdims=True)
    assert majority_vote(shares[[0, 1, 4]]).tolist() == [
        EMOTIONS.index("happiness"), -1, EMOTIONS.index("contempt")]


def test_load_ferplus_keeps_the_emotion_images_and_the_readers_agree_on_their_rows(tmp_path):
    votes = np.array([
        _votes(happiness=7, neutral=3),
        _votes(unknown=6, anger=4),  # mostly unknown: dropped
        _votes(sadness=2, not_face=1),
        _votes(not_face=9, fear=1),  # not a face: dropped
        _votes(contempt=4, anger=3, disgust=3),
    ])
    pixels = np.stack([np.full((48, 48), 40 * i, np.uint8) for i in range(len(votes))])
    (tmp_path / "ferplus").mkdir()
    np.savez(tmp_path / "ferplus" / "valid.npz", pixels=pixels, votes=votes)

    kept = load_ferplus(tmp_path / "ferplus" / "valid.npz")
    assert kept.rows.tolist() == [0, 2, 4]
    assert np.array_equal(kept.pixels, pixels[[0, 2, 4]]) and np.array_equal(kept.votes, votes[[0, 2, 4]])
    shares = kept.emotion_labels()["emotion"]
    assert np.allclose(shares.sum(axis=1), 1)
    assert shares[1, EMOTIONS.index("sadness")] == 1.0  # not_face votes are not emotion shares
    # The training crops and the evaluation labels are the same images, in the same order.
    crops = read_ferplus(tmp_path / "ferplus" / "valid.npz", 32)
    assert np.array_equal(crops.emotion, shares)
    assert [int(crops.crops[i].mean()) for i in range(3)] == [0, 80, 160]
    assert ferplus_val_labels(tmp_path).tolist() == [
        EMOTIONS.index("happiness"), EMOTIONS.index("sadness"), EMOTIONS.index("contempt")]


def test_emotion_accuracy_recall_and_confusion_by_hand():
    happy, sad, neutral = EMOTIONS.index("happiness"), EMOTIONS.index("sadness"), EMOTIONS.index("neutral")
    probabilities = np.zeros((5, 8))
    probabilities[[0, 1, 2, 3, 4], [happy, happy, sad, neutral, happy]] = 1.0
    labels = np.array([happy, sad, sad, neutral, -1])
    metrics = emotion_metrics(probabilities, labels)
    # 4 counted samples, 3 right (the -1 sample is excluded).
    assert metrics["count"] == 4 and metrics["accuracy"] == 0.75
    assert metrics["recall"]["sadness"] == 0.5 and metrics["recall"]["happiness"] == 1.0
    assert metrics["recall"]["anger"] is None
    # The mean recall over the classes present: happiness 1, sadness 0.5, neutral 1.
    assert abs(metrics["balanced_accuracy"] - 2.5 / 3) < 1e-12
    matrix = np.array(metrics["confusion"]["matrix"])
    assert matrix[sad, happy] == 1 and matrix[sad, sad] == 1 and matrix.sum() == 4


def test_roc_auc_by_hand():
    # Positives 0.9 and 0.4, negatives 0.5 and 0.1: of the 4 pairs, 3 ranked right.
    assert roc_auc(np.array([0.9, 0.4, 0.5, 0.1]), np.array([1, 1, 0, 0])) == 0.75
    assert roc_auc(np.array([0.5, 0.5]), np.array([1, 0])) == 0.5  # a tie counts half
    assert roc_auc(np.array([0.3, 0.2]), np.array([1, 1])) is None  # no negatives


def test_age_mae_by_hand():
    assert age_mae(np.array([20.0, 30.0, 50.0]), np.array([25.0, 30.0, 40.0])) == 5.0


def test_verification_pairs_and_accuracy():
    identities = np.array([1, 1, 1, 2, 2, 3])
    pairs, same = verification_pairs(identities, count=100)
    # Same-person pairs: 3 of person 1 + 1 of person 2; as many different-person pairs.
    assert same.sum() == 4 and (~same).sum() == 4
    assert all((identities[a] == identities[b]) == s for (a, b), s in zip(pairs, same))
    separable = np.where(same, 0.9, 0.1)
    assert verification_accuracy(separable, same, folds=2)["accuracy"] == 1.0
    # A similarity that says nothing: at best chance level on held-out folds.
    assert verification_accuracy(np.full(len(same), 0.5), same, folds=2)["accuracy"] == 0.5


def test_cached_predictions_are_the_same_through_onnx_runtime_and_the_module(random_weights):
    from face_mtl.evaluate import predict_cached
    from face_mtl.model import inference_runner, runner_runtime
    from face_mtl.weights import load_model

    model, config = load_model(random_weights, device="cpu")
    crops = np.random.default_rng(0).integers(0, 256, (5, 80, 80, 3), dtype=np.uint8)
    runner = inference_runner(model, config, "cpu", runtime="onnx")
    assert runner_runtime(runner) == "onnx" and runner_runtime(model) == "torch"
    # Batches of 2, 2 and 1 faces, with and without the mirror view (2 or 1 images a face).
    for flip in (True, False):
        settings = config.with_updates(test_time_flip=flip)
        through_onnx = predict_cached(runner, crops, settings, batch=2)
        through_module = predict_cached(model, crops, settings)
        for key, values in through_module.items():
            assert through_onnx[key].shape == values.shape
            np.testing.assert_allclose(through_onnx[key], values, atol=1e-4, err_msg=key)


def test_utkface_groups_by_hand():
    from face_mtl.config import ModelConfig
    from face_mtl.data.sets import CropSet
    from face_mtl.evaluate import utkface_groups

    config = ModelConfig()
    n = 4
    # Faces: a 10-year-old white girl, a 30-year-old black man, a 45-year-old asian woman,
    # a 70-year-old white man (gender order female, male; ethnicity white, black, asian, ...).
    faces = CropSet(
        crops=np.zeros((n, 2, 2, 3), np.uint8), emotion=np.zeros((n, 8), np.float32),
        age=np.array([10, 30, 45, 70], np.float32), gender=np.array([0, 1, 0, 1]),
        ethnicity=np.array([0, 1, 2, 0]), identity=np.full(n, -1), teacher=np.zeros((n, 128), np.float32),
    )
    outputs = {
        "age": np.array([14.0, 30.0, 40.0, 61.0]),  # errors 4, 0, 5, 9
        "gender": np.eye(2)[[1, 1, 0, 1]],  # the girl called male
        "ethnicity": np.eye(5)[[0, 1, 0, 0]],  # the asian woman called white
    }
    groups = utkface_groups(outputs, faces, config)
    assert groups["gender"]["female"]["count"] == 2
    assert groups["gender"]["female"]["age_mae"] == 4.5 and groups["gender"]["female"]["gender_error"] == 0.5
    assert groups["gender"]["male"]["age_mae"] == 4.5 and groups["gender"]["male"]["gender_accuracy"] == 1.0
    assert groups["ethnicity"]["asian"] == {"count": 1, "age_mae": 5.0, "gender_accuracy": 1.0,
                                            "ethnicity_accuracy": 0.0, "gender_error": 0.0, "ethnicity_error": 1.0}
    assert groups["ethnicity"]["white"]["age_mae"] == 6.5 and groups["ethnicity"]["indian"] == {"count": 0}
    assert list(groups["age"]) == ["0-12", "13-19", "20-39", "40-59", "60+"]
    assert groups["age"]["0-12"]["gender_accuracy"] == 0.0 and groups["age"]["13-19"] == {"count": 0}
    assert groups["age"]["60+"]["age_mae"] == 9.0
