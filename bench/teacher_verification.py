"""Identity verification of the teacher (dlib's descriptor) and the student on the same pairs,
on people trained on and people never trained on.

    python bench/teacher_verification.py [--weights DIR] [--views photos|crops] [--sample 1000]

Four sets of ``build_splits``: the held-out people (``celeba_val``, ``celeba_wild_val``, never
trained on) and the training people (``celeba_train``, ``celeba_wild_train``, a seeded sample of
``--sample`` faces each), scored with the pairs and 10-fold protocol of ``face-mtl eval``. The
teacher's descriptors come from the cache ``python -m face_mtl.train.teacher`` writes: of the
photos (``--views photos``, ``teacher/``) or of the student's own crops at its input size
(``--views crops``, ``teacher_cropsN/``, built with ``--views crops``). dlib compares
descriptors by Euclidean distance, the student by cosine similarity, so both are scored both
ways. The student's embedding is also compared with the teacher's descriptor of each face: the
mean cosine to the descriptor as dlib gives it ("raw") and to the descriptor minus the mean
descriptor of the training faces ("centred", see ``attach_teacher``), the part that tells
people apart. Those two mean something only for the distilled ("trained") identity head.
Training people against held-out people shows how much of the distillation generalises.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from face_mtl.data.sets import PHOTO_VIEWS, TEACHER_VIEWS, attach_teacher, build_splits, views_of
from face_mtl.evaluate import VERIFICATION_PAIRS, predict_cached, verification_accuracy, verification_pairs
from face_mtl.identity import normalize
from face_mtl.weights import load_model

SETS = ("celeba_val", "celeba_wild_val", "celeba_train", "celeba_wild_train")


def scores(vectors: np.ndarray, pairs: np.ndarray, is_same: np.ndarray) -> dict[str, float]:
    a, b = vectors[pairs[:, 0]], vectors[pairs[:, 1]]
    cosine = (normalize(a) * normalize(b)).sum(axis=1)
    distance = np.linalg.norm(a - b, axis=1)
    return {"cosine": verification_accuracy(cosine, is_same)["accuracy"],
            "euclidean": verification_accuracy(-distance, is_same)["accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None, help="student weights folder (default: bundled)")
    parser.add_argument("--views", choices=TEACHER_VIEWS, default=PHOTO_VIEWS, help="what the teacher described")
    parser.add_argument("--sample", type=int, default=1000, help="faces of each training set (default 1000)")
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--cache", default=".cache")
    args = parser.parse_args()

    model, config = load_model(args.weights)
    views = views_of(args.views, config.input_size)
    splits = build_splits(Path(args.data), Path(args.cache), config.input_size)
    attach_teacher(splits, Path(args.cache), "raw", views)
    raw = {name: splits[name].teacher for name in SETS}
    # The centred targets as training builds them (on the training faces' mean).
    attach_teacher(splits, Path(args.cache), "centred", views)
    rng = np.random.default_rng(0)
    report = {"weights": args.weights or "bundled", "backbone": config.backbone, "input_size": config.input_size,
              "teacher_views": views}
    for name in SETS:
        faces = splits[name]
        described = np.flatnonzero(np.abs(raw[name]).sum(axis=1) > 0)
        if not len(described):
            report[name] = f"no teacher descriptors: python -m face_mtl.train.teacher --sets {name}"
            continue
        if name.endswith("_train") and len(described) > args.sample:
            described = np.sort(rng.choice(described, args.sample, replace=False))
        identities = faces.identity[described]
        pairs, is_same = verification_pairs(identities, VERIFICATION_PAIRS)
        student = predict_cached(model, faces.crops[described], config)["embedding"]
        teacher = raw[name][described]
        report[name] = {
            "photos": int(len(described)), "people": int(len(np.unique(identities))), "pairs": int(len(is_same)),
            "teacher": scores(teacher, pairs, is_same),
            "student": scores(student, pairs, is_same),
            "student_cosine_to_teacher": {
                "raw": float((normalize(student) * normalize(teacher)).sum(axis=1).mean()),
                "centred": float((normalize(student) * faces.teacher[described]).sum(axis=1).mean())},
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
