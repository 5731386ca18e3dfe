"""Verification of held-out people with three identity heads on the same weights (prints
figures; not a test): the weights' own head, PCA of the backbone features, and Fisher LDA
over the CelebA training people, whose shrinkage is chosen by cross-validation over those
training people (never the held-out ones), as training's export chooses them
(``face_mtl.train.embedding``).

    python bench/identity_heads.py --weights training/resnet18_64
    python bench/identity_heads.py --teacher-regression celeba_train utk_train ferplus_train

``--teacher-regression SETS``: also ridge regressions (one per strength in RIDGE_STRENGTHS)
from the backbone features of the faces of SETS that have dlib descriptors cached to their
centred descriptors (the distillation targets of ``--teacher-target centred``): a closed-form
head taught by the teacher on far more faces than LDA's training people. Tried in session 16
(training/HISTORY.md); none beat LDA, so training's export does not offer it. The strength is
chosen on the held-out people here, so its best figure flatters it.

Verification is ``face-mtl eval``'s: pairs of the held-out CelebA people (celeba_val), the
tight view and both mirror views, 10-fold threshold. Needs the crop cache (``face-mtl eval``
or ``face-mtl train`` builds it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from face_mtl.data.sets import SPLITS, attach_teacher, build_splits
from face_mtl.evaluate import cached_features, pair_scores, verification_report
from face_mtl.train.embedding import IdentityHead, identity_heads, ridge_projection, set_identity_head
from face_mtl.weights import load_model

# Ridge strengths, as multiples of the mean feature variance added to every direction.
RIDGE_STRENGTHS = (0.01, 0.1, 1.0)


def teacher_regressions(model, config, splits, sets: list[str], size: int) -> list[IdentityHead]:
    """One head per RIDGE_STRENGTHS: least squares from the pooled backbone features of the
    faces of ``sets`` with a cached teacher descriptor to their (centred) descriptors."""
    features, targets = [], []
    for name in sets:
        described = splits[name].described()
        if len(described):
            features.append(cached_features(model, splits[name].crops[described], config)[:, 0].double())
            targets.append(torch.from_numpy(splits[name].teacher[described]).double())
    if not features:
        raise SystemExit(f"no teacher descriptors cached for {', '.join(sets)}: python -m face_mtl.train.teacher")
    x, y = torch.cat(features), torch.cat(targets)
    if y.shape[1] != size:
        raise SystemExit(f"the teacher's {y.shape[1]}-d descriptors do not fit a {size}-d embedding")
    heads = []
    for strength in RIDGE_STRENGTHS:
        heads.append(IdentityHead("teacher-regression", *ridge_projection(x, y, strength),
                                  {"strength": strength, "faces": int(len(x)), "sets": sets}))
    return heads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="training/resnet18_64")
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--cache", default=".cache")
    parser.add_argument("--teacher-regression", nargs="+", default=None, metavar="SET",
                        choices=[name for name in SPLITS if name.endswith("_train")],
                        help="also fit ridge heads to the centred teacher descriptors of these training sets")
    args = parser.parse_args()
    model, config = load_model(args.weights, device="cpu")
    splits = build_splits(Path(args.data), Path(args.cache), config.input_size)
    train, held_out = splits["celeba_train"], splits["celeba_val"]
    print(f"{args.weights}: {len(train)} training faces of {len(np.unique(train.identity))} people; held out "
          f"{len(held_out)} faces of {len(np.unique(held_out.identity))} people")
    heads = identity_heads(model, train, "cpu")
    if args.teacher_regression:
        if not attach_teacher(splits, Path(args.cache), "centred"):
            raise SystemExit("no teacher descriptors cached: python -m face_mtl.train.teacher")
        heads += teacher_regressions(model, config, splits, args.teacher_regression, config.embedding_size)
    for head in heads:
        for shrink, value in head.detail.get("cross_validated", {}).items():
            print(f"  LDA shrinkage {shrink:>5}: cross-validated over training people {value:.4f}")
        set_identity_head(model, head)
        accuracy = verification_report(pair_scores(model, config, held_out, "cpu"))["accuracy"]
        chosen = f" (shrinkage {head.detail['shrinkage']})" if "shrinkage" in head.detail else ""
        if "strength" in head.detail:
            chosen = f" ({head.detail['faces']} faces of {'+'.join(head.detail['sets'])}, strength {head.detail['strength']})"
        print(f"held-out verification, {head.name} head{chosen}: {accuracy:.4f}")


if __name__ == "__main__":
    main()
