"""Training throughput on this machine: the bare network step, the data path, and both together.

    python bench/train_throughput.py --backbone resnet18 --size 64 --precision bf16

Prints images/s of (1) the network alone (forward + backward + AdamW on a fixed batch),
(2) batch assembly + augmentation alone, (3) the two in sequence (the loop before prefetching)
and (4) with the batch prefetched in a worker thread (``face_mtl.train.loop.prefetched``).
Needs the crop cache of that size (``face-mtl train`` or ``face-mtl eval`` builds it). Pause
any training run while measuring: a shared CPU makes every figure wrong.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from face_mtl.config import ModelConfig
from face_mtl.data.sets import build_splits
from face_mtl.model import FaceMTLNet
from face_mtl.train.augment import AugmentSettings, augment_batch
from face_mtl.train.loop import Cycler, autocast_for, make_batch, prefetched
from face_mtl.train.losses import CosFaceHead, multitask_loss
from face_mtl.train.settings import TrainSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--cache", default=".cache")
    args = parser.parse_args()

    settings = TrainSettings()
    splits = build_splits(Path(args.data), Path(args.cache), args.size)
    fer, utk, celeba = splits["ferplus_train"], splits["utk_train"], splits["celeba_train"]
    config = ModelConfig(backbone=args.backbone, input_size=args.size)
    model = FaceMTLNet(config).to(memory_format=torch.channels_last).train()
    cosface = CosFaceHead(config.embedding_size, int(celeba.identity.max()) + 1)
    optimizer = torch.optim.AdamW(list(model.parameters()) + list(cosface.parameters()), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    cyclers = {name: Cycler(len(s), generator) for name, s in (("fer", fer), ("utk", utk), ("celeba", celeba))}
    autocast = autocast_for("cpu", args.precision)
    augment = AugmentSettings()

    def draw(_: int = 0):
        crops, labels = make_batch([
            (fer, cyclers["fer"].take(settings.batch_emotion)),
            (utk, cyclers["utk"].take(settings.batch_utk)),
            (celeba, cyclers["celeba"].take(settings.batch_identity)),
        ])
        x = augment_batch(crops, config.input_size, config.mean, config.std, augment, generator)
        return x.contiguous(memory_format=torch.channels_last), labels

    def step(x, labels) -> None:
        with autocast:
            outputs = model(x)
        loss = multitask_loss(outputs, labels, cosface, settings.loss_weights, None)["total"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def rate(run) -> float:
        run(3)  # warm-up
        start = time.perf_counter()
        run(args.steps)
        return args.steps * len(fixed[0]) / (time.perf_counter() - start)

    fixed = draw()
    network = rate(lambda n: [step(*fixed) for _ in range(n)])
    data = rate(lambda n: [draw() for _ in range(n)])
    sequential = rate(lambda n: [step(*draw()) for _ in range(n)])
    overlapped = rate(lambda n: [step(*batch) for batch in prefetched(draw, n)])
    print(f"{args.backbone} {args.size}px {args.precision} batch {len(fixed[0])}, {torch.get_num_threads()} threads:")
    for name, value in (("network alone", network), ("data path alone", data),
                        ("sequential (before)", sequential), ("prefetched (after)", overlapped)):
        print(f"  {name:22s} {value:7.1f} img/s")
    print(f"  load average {np.round(np.array(__import__('os').getloadavg()), 2).tolist()}")


if __name__ == "__main__":
    main()
