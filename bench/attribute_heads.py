"""Held-out age, gender and ethnicity when only the attribute heads of weights are refitted on
their frozen backbone, after every epoch and for several label weights (prints figures; not a
test; ``face-mtl attribute-heads`` writes weights with one setting).

    python bench/attribute_heads.py runs/s20a/ship --reference training/resnet18_64

Continuing training from good weights, expression rises while held-out age gets worse as the
UTKFace training loss keeps falling (training/HISTORY.md, runs 20-23). This asks where that drift
lives. The age, gender and ethnicity heads (linear layers over the pooled backbone features)
are refitted from their trained values by Adam on the frozen features of every training face
(UTKFace, CelebA and FER+ training splits, each face and its mirror image) towards the
reference weights' flip-averaged probabilities (the targets of ``--loss-reference``, cached by
``face_mtl.train.reference``, with training's ``reference_loss``), plus, for each ``--hard``
weight above 0, the UTKFace labels (training's ``age_loss``; plain cross-entropy for gender and
ethnicity, where training smooths the labels by 0.05). After every epoch it prints the held-out UTKFace figures (utk_val, both
mirror views averaged, as ``face-mtl eval`` reads them; the features are bf16 where the CPU
has native bf16, so figures may differ from ``face-mtl eval``'s in the last digit).

The figures are read off the validation split the ship decision uses, so a variant chosen here
flatters itself; it says whether refitting helps, not by exactly how much.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from face_mtl.data.sets import build_splits
from face_mtl.evaluate import cached_features
from face_mtl.model import cpu_has_native_bf16
from face_mtl.train.attribute_heads import (
    TRAINING_SETS,
    held_out_figures,
    refit_heads,
    training_samples,
)
from face_mtl.train.losses import REFERENCE_HEADS
from face_mtl.train.reference import attach_reference
from face_mtl.weights import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", help="weights folder whose attribute heads are refitted")
    parser.add_argument("--reference", default="training/resnet18_64", help="weights whose predictions are the targets")
    parser.add_argument("--hard", type=float, nargs="+", default=[0.0, 0.5], help="weights of the UTKFace label losses")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--cache", default=".cache")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model, config = load_model(args.weights)
    splits = build_splits(Path(args.data), Path(args.cache), config.input_size)
    attach_reference(splits, args.reference, config, args.cache)
    held_out = splits["utk_val"]
    precision = "bf16" if cpu_has_native_bf16() else "fp32"  # faster; face-mtl attribute-heads uses the config's
    held_out_features = cached_features(model, held_out.crops, config, precision=precision, mirror=True)
    features, reference, labels = training_samples(model, config, [splits[name] for name in TRAINING_SETS],
                                                   precision=precision)
    start = {name: model.head_parameters(name) for name in REFERENCE_HEADS}

    def show(name: str, epoch: int | str, heads: dict) -> None:
        figures = held_out_figures(heads, held_out_features, held_out)
        print(f"| {name} | {epoch} | {figures['age_mae']:.4f} | {figures['gender_accuracy']:.4f} "
              f"| {figures['ethnicity_accuracy']:.4f} |", flush=True)

    print(f"{args.weights}: attribute heads refitted towards {args.reference} on {len(features)} views of "
          f"{', '.join(TRAINING_SETS)}; held out: utk_val ({len(held_out)} faces)")
    print("| heads | epoch | age MAE | gender | ethnicity |\n|---|---|---|---|---|")
    show("as trained", "-", start)
    for hard in args.hard:
        refit_heads(start, features, reference, labels, hard, args.epochs, args.lr,
                    generator=torch.Generator().manual_seed(args.seed),
                    report=lambda epoch, heads, hard=hard: show(f"reference + {hard} x labels", epoch, heads))


if __name__ == "__main__":
    main()
