"""Identity verification of the teacher (dlib's descriptor) and the student on the same pairs.

    python bench/teacher_verification.py [--weights DIR]

Both are scored on the held-out CelebA people of ``build_splits`` (never trained on) with the
pairs and 10-fold protocol of ``face-mtl eval``. The teacher's descriptors come from the cache
that ``python -m face_mtl.train.teacher --sets celeba_val`` writes; dlib compares them by
Euclidean distance, the student by cosine similarity, so both are scored both ways. The
student's embedding is also compared with the teacher's descriptor of each face: the mean
cosine to the descriptor as dlib gives it ("raw") and to the descriptor minus the mean
descriptor of the training faces ("centred", see ``attach_teacher``; null without a training
split's descriptors in the cache), the part that tells people apart. Those two mean something
only for the distilled ("trained") identity head: an LDA or PCA head has axes of its own.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from face_mtl.data.sets import attach_teacher, build_splits
from face_mtl.evaluate import VERIFICATION_PAIRS, predict_cached, verification_accuracy, verification_pairs
from face_mtl.identity import normalize
from face_mtl.weights import load_model


def scores(vectors: np.ndarray, pairs: np.ndarray, is_same: np.ndarray) -> dict[str, float]:
    a, b = vectors[pairs[:, 0]], vectors[pairs[:, 1]]
    cosine = (normalize(a) * normalize(b)).sum(axis=1)
    distance = np.linalg.norm(a - b, axis=1)
    return {"cosine": verification_accuracy(cosine, is_same)["accuracy"],
            "euclidean": verification_accuracy(-distance, is_same)["accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None, help="student weights folder (default: bundled)")
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--cache", default=".cache")
    args = parser.parse_args()

    model, config = load_model(args.weights)
    splits = build_splits(Path(args.data), Path(args.cache), config.input_size)
    people = splits["celeba_val"]
    with np.load(Path(args.cache) / "teacher" / "celeba_val.npz") as data:
        teacher = data["teacher"]
    if len(teacher) != len(people) or not np.abs(teacher).sum(axis=1).all():
        raise SystemExit("the teacher cache for celeba_val is missing or incomplete: "
                         "python -m face_mtl.train.teacher --sets celeba_val")
    pairs, is_same = verification_pairs(people.identity, VERIFICATION_PAIRS)
    student = predict_cached(model, people.crops, config)["embedding"]
    # The centred targets as training builds them from this cache (on its training faces' mean);
    # None without a training split's descriptors to centre on.
    centred_on = attach_teacher(splits, Path(args.cache), "centred")
    centred = splits["celeba_val"].teacher if centred_on else None
    print(json.dumps({
        "pairs": int(len(is_same)), "people": int(len(np.unique(people.identity))), "photos": int(len(people)),
        "teacher_dlib": scores(teacher, pairs, is_same),
        "student": {**scores(student, pairs, is_same), "weights": args.weights or "bundled",
                    "backbone": config.backbone, "input_size": config.input_size,
                    "cosine_to_teacher": {"raw": float((normalize(student) * normalize(teacher)).sum(axis=1).mean()),
                                          "centred": None if centred is None
                                          else float((normalize(student) * centred).sum(axis=1).mean())}},
    }, indent=2))


if __name__ == "__main__":
    main()
