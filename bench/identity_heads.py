"""Verification of held-out people with three identity heads on the same weights (prints
figures; not a test): the weights' own head, PCA of the backbone features, and Fisher LDA
over the CelebA training people, whose shrinkage is chosen by cross-validation over those
training people (never the held-out ones).

    python bench/identity_heads.py --weights training/resnet18_64 [--folds 4]

Verification is ``face-mtl eval``'s: pairs of the held-out CelebA people (celeba_val), the
tight view and both mirror views, 10-fold threshold. Needs the crop cache (``face-mtl eval``
or ``face-mtl train`` builds it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from face_mtl.data.sets import build_splits
from face_mtl.evaluate import pair_scores, verification_accuracy, verification_pairs, verification_report
from face_mtl.train.embedding import backbone_features, lda_projection, pca_projection
from face_mtl.weights import load_model

SHRINKAGES = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)


def held_out_verification(model, config, people, weight, bias) -> float:
    head = model.heads["embedding"]
    kept = head.weight.detach().clone(), head.bias.detach().clone()
    with torch.no_grad():
        head.weight.copy_(weight), head.bias.copy_(bias)
    try:
        return verification_report(pair_scores(model, config, people, "cpu"))["accuracy"]
    finally:
        with torch.no_grad():
            head.weight.copy_(kept[0]), head.bias.copy_(kept[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="training/resnet18_64")
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--cache", default=".cache")
    parser.add_argument("--folds", type=int, default=4)
    args = parser.parse_args()
    model, config = load_model(args.weights, device="cpu")
    splits = build_splits(Path(args.data), Path(args.cache), config.input_size)
    train, held_out = splits["celeba_train"], splits["celeba_val"]
    features, identities = backbone_features(model, train.crops, config, "cpu"), train.identity
    people = np.unique(identities)
    print(f"{args.weights}: {len(train)} training faces of {len(people)} people; held out "
          f"{len(held_out)} faces of {len(np.unique(held_out.identity))} people")

    # Shrinkage by cross-validation over training people (one view, features projected directly).
    order = np.random.default_rng(0).permutation(people)
    scores = {shrink: [] for shrink in SHRINKAGES}
    for fold, test_people in enumerate(np.array_split(order, args.folds)):
        test = np.isin(identities, test_people)
        pairs, same = verification_pairs(identities[test], 3000, fold)
        for shrink in SHRINKAGES:
            weight, bias = lda_projection(features[~test], identities[~test], config.embedding_size, shrink)
            embedded = F.normalize(features[test] @ weight.T + bias, dim=1).numpy()
            similarity = (embedded[pairs[:, 0]] * embedded[pairs[:, 1]]).sum(axis=1)
            scores[shrink].append(verification_accuracy(similarity, same)["accuracy"])
    for shrink, values in scores.items():
        print(f"LDA shrinkage {shrink:5}: cross-validated {np.mean(values):.4f} ({', '.join(f'{v:.3f}' for v in values)})")
    chosen = max(scores, key=lambda shrink: np.mean(scores[shrink]))

    head = model.heads["embedding"]
    print(f"held-out verification, the weights' head: "
          f"{held_out_verification(model, config, held_out, head.weight.detach().clone(), head.bias.detach().clone()):.4f}")
    print(f"held-out verification, PCA head: "
          f"{held_out_verification(model, config, held_out, *pca_projection(features, config.embedding_size)):.4f}")
    lda = lda_projection(features, identities, config.embedding_size, chosen)
    print(f"held-out verification, LDA head (shrinkage {chosen}): {held_out_verification(model, config, held_out, *lda):.4f}")


if __name__ == "__main__":
    main()
