"""Can a non-linear head over the frozen backbone's pooled features verify held-out people
better than a linear one? (training/HISTORY.md, session 22.)

    python bench/identity_mlp_heads.py [--weights training/resnet18_64] [--epochs 6]

The pooled features of every training face with a cached dlib descriptor (UTKFace, CelebA and
FER+ training splits) and of its mirror image are computed once (bf16 autocast where the CPU
has native bf16); heads of growing capacity are then trained on them towards the centred
descriptors (cosine distance x 5 plus relational distillation x 100, training's
``--loss-teacher 5 --loss-teacher-relation 100``; AdamW, one-cycle). After every epoch each
head verifies ``face-mtl eval``'s 6,000 pairs of the held-out CelebA people (both views'
embeddings averaged), beside the weights' own embedding head on the same features.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from face_mtl.data.sets import attach_teacher, build_splits
from face_mtl.evaluate import VERIFICATION_PAIRS, cached_features, verification_accuracy, verification_pairs
from face_mtl.model import cpu_has_native_bf16
from face_mtl.train.attribute_heads import TRAINING_SETS
from face_mtl.train.losses import teacher_loss, teacher_relation_loss
from face_mtl.weights import load_model


def heads(width: int) -> dict[str, nn.Module]:
    return {
        f"linear {width}->128": nn.Linear(width, 128),
        f"MLP {width}->1024->128": nn.Sequential(nn.Linear(width, 1024), nn.GELU(), nn.Dropout(0.2), nn.Linear(1024, 128)),
        f"MLP {width}->2048->2048->128": nn.Sequential(
            nn.Linear(width, 2048), nn.GELU(), nn.Dropout(0.3), nn.Linear(2048, 2048), nn.GELU(), nn.Dropout(0.3),
            nn.Linear(2048, 128)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="training/resnet18_64")
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--cache", default=".cache")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    model, config = load_model(args.weights)
    splits = build_splits(Path(args.data), Path(args.cache), config.input_size)
    if not attach_teacher(splits, Path(args.cache), "centred"):
        raise SystemExit("no teacher descriptors cached: python -m face_mtl.train.teacher")
    precision = "bf16" if cpu_has_native_bf16() else "fp32"
    started, features, targets = time.time(), [], []
    for name in TRAINING_SETS:
        described = splits[name].described()
        features.append(cached_features(model, splits[name].crops[described], config, precision=precision, mirror=True))
        targets.append(torch.from_numpy(splits[name].teacher[described]).float()[:, None].expand(-1, 2, -1))
        print(f"{name}: {len(described)} faces with a descriptor ({time.time() - started:.0f} s)", flush=True)
    x, y = torch.cat(features).flatten(0, 1), torch.cat(targets).flatten(0, 1)
    mean, std = x.mean(dim=0), x.std(dim=0) + 1e-6
    held_out = splits["celeba_val"]
    views = cached_features(model, held_out.crops, config, precision=precision, mirror=True)
    pairs, same = verification_pairs(held_out.identity, VERIFICATION_PAIRS, 0)

    def verification(embed) -> float:
        with torch.no_grad():
            e = F.normalize(F.normalize(embed(views[:, 0]), dim=1) + F.normalize(embed(views[:, 1]), dim=1), dim=1).numpy()
        return verification_accuracy((e[pairs[:, 0]] * e[pairs[:, 1]]).sum(axis=1), same)["accuracy"]

    weight, bias = model.head_parameters("embedding")
    print(f"{args.weights}: its own embedding head on these {precision} features verifies at "
          f"{verification(lambda f: f @ weight.T + bias):.4f}", flush=True)
    steps_per_epoch = len(x) // 256
    for title, head in heads(x.shape[1]).items():
        optimiser = torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=1e-4)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, args.lr, total_steps=args.epochs * steps_per_epoch)
        print(title, flush=True)
        for epoch in range(1, args.epochs + 1):
            head.train()
            for index in torch.randperm(len(x)).split(256)[:steps_per_epoch]:
                out, target = F.normalize(head((x[index] - mean) / std), dim=1), y[index]
                loss = 5 * teacher_loss(out, target) + 100 * teacher_relation_loss(out, target)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                schedule.step()
            head.eval()
            print(f"  epoch {epoch}: last batch loss {loss.item():.4f}, held-out verification "
                  f"{verification(lambda f, head=head: head((f - mean) / std)):.4f}", flush=True)


if __name__ == "__main__":
    main()
