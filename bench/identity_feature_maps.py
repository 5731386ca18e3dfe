"""Does identity live in the spatial layout that the global pool throws away? (prints figures;
not a test). Face-recognition networks read identity from the flattened last feature map,
not its average; this asks whether that would help here before any training is spent on it.

Over a frozen backbone, closed-form identity heads read three feature kinds of the same faces:
the pooled features the heads use (512-d for resnet18), the flattened last map (512 x 2 x 2
at 64 px) and the flattened map one stage earlier (256 x 4 x 4). Each face is seen in both
mirror views; the mirror view's map is flipped back before the two are averaged. Heads:
centred cosine of the features themselves, Fisher LDA over the CelebA training people (a
shrinkage grid), and ridge regressions to the centred teacher descriptors of the training
faces that have them (``--teacher-sets``). Shrinkage and strength are read off the held-out
people, which flatters every row alike.

    python bench/identity_feature_maps.py --weights training/resnet18_64

Verification is ``face-mtl eval``'s pairs of the held-out CelebA people (celeba_val), 10-fold
threshold. Needs the crop cache and the teacher descriptors (python -m face_mtl.train.teacher).
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from face_mtl.data.sets import SPLITS, attach_teacher, build_splits
from face_mtl.evaluate import VERIFICATION_PAIRS, cached_inputs, verification_accuracy, verification_pairs
from face_mtl.train.embedding import lda_projection, ridge_projection
from face_mtl.weights import load_model

LDA_SHRINKAGES = (0.3, 1.0, 3.0)
RIDGE_STRENGTHS = (0.01, 0.1, 1.0)


def feature_kinds(model, crops: np.ndarray, config, bf16: bool) -> dict[str, torch.Tensor]:
    """N x F float32 features of each kind ("pooled", "last map", "map before"), both mirror
    views averaged (the mirror view's maps flipped back first, so that positions line up)."""
    kinds: dict[str, list[torch.Tensor]] = {"pooled": [], "last map": [], "map before": []}
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    model.eval()
    with torch.inference_mode(), autocast:
        for x in cached_inputs(crops, config):
            n = len(x)
            before, last = model.backbone.forward_intermediates(
                torch.cat([x, torch.flip(x, dims=[3])]), indices=2, intermediates_only=True)
            before, last = before.float(), last.float()
            before = (before[:n] + torch.flip(before[n:], dims=[3])) / 2
            last = (last[:n] + torch.flip(last[n:], dims=[3])) / 2
            kinds["pooled"].append(last.mean(dim=(2, 3)))
            kinds["last map"].append(last.flatten(1))
            kinds["map before"].append(before.flatten(1))
    return {kind: torch.cat(parts) for kind, parts in kinds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="training/resnet18_64")
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--cache", default=".cache")
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--teacher-sets", nargs="+", default=["celeba_train", "utk_train"], metavar="SET",
                        choices=[name for name in SPLITS if name.endswith("_train")])
    args = parser.parse_args()
    model, config = load_model(args.weights, device="cpu")
    splits = build_splits(Path(args.data), Path(args.cache), config.input_size)
    if not attach_teacher(splits, Path(args.cache), "centred"):
        raise SystemExit("no teacher descriptors cached: python -m face_mtl.train.teacher")
    bf16 = args.precision == "bf16"
    started = time.time()
    train, held_out = splits["celeba_train"], splits["celeba_val"]
    train_features, held_out_features = (feature_kinds(model, s.crops, config, bf16) for s in (train, held_out))
    taught = [(splits[name], splits[name].described()) for name in args.teacher_sets]
    taught_features = [feature_kinds(model, s.crops[d], config, bf16) for s, d in taught]
    targets = torch.cat([torch.from_numpy(s.teacher[d]) for s, d in taught])
    pairs, same = verification_pairs(held_out.identity, VERIFICATION_PAIRS, 0)
    print(f"{args.weights} ({args.precision}): {len(train)} training faces of {len(np.unique(train.identity))} "
          f"people, {len(targets)} faces with teacher descriptors, held out {len(held_out)} faces of "
          f"{len(np.unique(held_out.identity))} people; features in {time.time() - started:.0f} s")

    def verify(embedded: torch.Tensor) -> float:
        unit = F.normalize(embedded.float(), dim=1).numpy()
        return verification_accuracy((unit[pairs[:, 0]] * unit[pairs[:, 1]]).sum(axis=1), same)["accuracy"]

    for kind in train_features:
        fitted, tested = train_features[kind], held_out_features[kind]
        print(f"{kind} ({fitted.shape[1]}-d): centred cosine {verify(tested - fitted.mean(dim=0)):.4f}")
        for shrink in LDA_SHRINKAGES:
            weight, bias = lda_projection(fitted, train.identity, config.embedding_size, shrink)
            print(f"  LDA, shrinkage {shrink}: {verify(tested @ weight.T + bias):.4f}")
        features = torch.cat([part[kind] for part in taught_features])
        for strength in RIDGE_STRENGTHS:
            weight, bias = ridge_projection(features, targets, strength)
            print(f"  ridge to the teacher, strength {strength}: {verify(tested @ weight.T + bias):.4f}")


if __name__ == "__main__":
    main()
