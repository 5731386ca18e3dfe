"""Verification of held-out people with three identity heads on the same weights (prints
figures; not a test): the weights' own head, PCA of the backbone features, and Fisher LDA
over the CelebA training people, whose shrinkage is chosen by cross-validation over those
training people (never the held-out ones), as training's export chooses them
(``face_mtl.train.embedding``).

    python bench/identity_heads.py --weights training/resnet18_64

Verification is ``face-mtl eval``'s: pairs of the held-out CelebA people (celeba_val), the
tight view and both mirror views, 10-fold threshold. Needs the crop cache (``face-mtl eval``
or ``face-mtl train`` builds it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from face_mtl.data.sets import build_splits
from face_mtl.evaluate import pair_scores, verification_report
from face_mtl.train.embedding import identity_heads, set_identity_head
from face_mtl.weights import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="training/resnet18_64")
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--cache", default=".cache")
    args = parser.parse_args()
    model, config = load_model(args.weights, device="cpu")
    splits = build_splits(Path(args.data), Path(args.cache), config.input_size)
    train, held_out = splits["celeba_train"], splits["celeba_val"]
    print(f"{args.weights}: {len(train)} training faces of {len(np.unique(train.identity))} people; held out "
          f"{len(held_out)} faces of {len(np.unique(held_out.identity))} people")
    for head in identity_heads(model, train, "cpu"):
        for shrink, value in head.detail.get("cross_validated", {}).items():
            print(f"  LDA shrinkage {shrink:>5}: cross-validated over training people {value:.4f}")
        set_identity_head(model, head)
        accuracy = verification_report(pair_scores(model, config, held_out, "cpu"))["accuracy"]
        chosen = f" (shrinkage {head.detail['shrinkage']})" if "shrinkage" in head.detail else ""
        print(f"held-out verification, {head.name} head{chosen}: {accuracy:.4f}")


if __name__ == "__main__":
    main()
