"""Held-out age, gender and ethnicity when only the attribute heads of weights are refitted on
their frozen backbone (prints figures; not a test).

    python bench/attribute_heads.py runs/s20a/ship --reference training/resnet18_64

Continuing training from good weights, expression rises while held-out age gets worse as the
UTKFace training loss keeps falling (MODEL_CARD.md, runs 20-23). This asks where that drift
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
import contextlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from face_mtl.data.sets import build_splits
from face_mtl.evaluate import accuracy, age_mae, cached_inputs
from face_mtl.model import cpu_has_native_bf16, expected_years
from face_mtl.train.losses import REFERENCE_HEADS, age_loss, reference_loss
from face_mtl.train.reference import attach_reference
from face_mtl.weights import load_model

TRAINING_SETS = ("utk_train", "celeba_train", "ferplus_train")


def mirrored_features(model, crops: np.ndarray, config) -> torch.Tensor:
    """N x 2 x F pooled backbone features of each cached crop's tight view and its mirror."""
    model.eval()
    precision = torch.autocast("cpu", dtype=torch.bfloat16) if cpu_has_native_bf16() else contextlib.nullcontext()
    parts = []
    with torch.inference_mode(), precision:
        for x in cached_inputs(crops, config):
            features = model.backbone(torch.cat([x, torch.flip(x, dims=[3])])).float()
            parts.append(torch.stack([features[: len(x)], features[len(x):]], dim=1))
    return torch.cat(parts)


def held_out_figures(heads: dict, features: torch.Tensor, split) -> dict[str, float]:
    """Age MAE, gender and ethnicity accuracy of linear ``heads`` (name -> (weight, bias)) over
    N x 2 x F features, each head's softmax averaged over the two views."""
    with torch.no_grad():
        p = {h: (features @ w.T + b).softmax(dim=-1).mean(dim=1) for h, (w, b) in heads.items()}
    return {  # as face-mtl eval scores utk_val (evaluate_splits)
        "age_mae": age_mae(expected_years(p["age"]).numpy(), split.age),
        "gender": accuracy(p["gender"].numpy(), split.gender),
        "ethnicity": accuracy(p["ethnicity"].numpy(), split.ethnicity),
    }


def refit_heads(start: dict, features: torch.Tensor, reference: torch.Tensor, labels: dict, hard: float,
                epochs: int, lr: float, report) -> dict:
    """Adam from ``start`` on KL(reference || heads) (+ ``hard`` x the label losses); calls
    ``report(epoch, heads)`` after every epoch and returns the last heads."""
    params = {h: [w.clone().requires_grad_(), b.clone().requires_grad_()] for h, (w, b) in start.items()}
    optimiser = torch.optim.Adam([p for pair in params.values() for p in pair], lr=lr)
    for epoch in range(1, epochs + 1):
        for index in torch.randperm(len(features)).split(512):
            x = features[index]
            logits = {h: x @ params[h][0].T + params[h][1] for h in REFERENCE_HEADS}
            loss = reference_loss(logits, reference[index], REFERENCE_HEADS)
            if hard:
                age = labels["age"][index]
                aged = ~torch.isnan(age)
                if aged.any():
                    loss = loss + hard * age_loss(logits["age"][aged], age[aged])
                for head in ("gender", "ethnicity"):
                    known = labels[head][index] >= 0
                    if known.any():
                        loss = loss + hard * F.cross_entropy(logits[head][known], labels[head][index][known])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        report(epoch, {h: (w.detach(), b.detach()) for h, (w, b) in params.items()})
    return {h: (w.detach(), b.detach()) for h, (w, b) in params.items()}


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

    torch.manual_seed(args.seed)
    model, config = load_model(args.weights)
    splits = build_splits(Path(args.data), Path(args.cache), config.input_size)
    attach_reference(splits, args.reference, config, args.cache)
    held_out = splits["utk_val"]
    held_out_features = mirrored_features(model, held_out.crops, config)
    training = [splits[name] for name in TRAINING_SETS]
    # Each face's two views are two samples with the face's (flip-averaged) targets.
    features = torch.cat([mirrored_features(model, s.crops, config).flatten(0, 1) for s in training])
    twice = lambda array: torch.from_numpy(np.repeat(array, 2, axis=0))  # noqa: E731
    reference = torch.cat([twice(s.reference) for s in training])
    labels = {f: torch.cat([twice(getattr(s, f)) for s in training]) for f in ("age", "gender", "ethnicity")}
    start = {h: (model.heads[h].weight.detach().float(), model.heads[h].bias.detach().float()) for h in REFERENCE_HEADS}

    def show(name: str, epoch: int | str, heads: dict) -> None:
        figures = held_out_figures(heads, held_out_features, held_out)
        print(f"| {name} | {epoch} | {figures['age_mae']:.4f} | {figures['gender']:.4f} | {figures['ethnicity']:.4f} |", flush=True)

    print(f"{args.weights}: attribute heads refitted towards {args.reference} on {len(features)} views of "
          f"{', '.join(TRAINING_SETS)}; held out: utk_val ({len(held_out)} faces)")
    print("| heads | epoch | age MAE | gender | ethnicity |\n|---|---|---|---|---|")
    show("as trained", "-", start)
    for hard in args.hard:
        refit_heads(start, features, reference, labels, hard, args.epochs, args.lr,
                    lambda epoch, heads, hard=hard: show(f"reference + {hard} x labels", epoch, heads))


if __name__ == "__main__":
    main()
