"""Under- or over-fitting: the same validation metrics on training samples and on the held-out splits.

    python bench/train_val_gap.py [--weights face_mtl/assets]

Training samples: 3400 FER+ and 2074 UTKFace crops, and 55 training identities of CelebA (as
many as the held-out people), drawn with a fixed seed from the crop cache (no augmentation).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from face_mtl.data.sets import build_splits
from face_mtl.evaluate import evaluate_splits, headline
from face_mtl.weights import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None, help="weights folder (default: bundled)")
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--cache", default=".cache")
    args = parser.parse_args()

    model, config = load_model(args.weights, device="cpu")
    splits = build_splits(Path(args.data), Path(args.cache), config.input_size)
    rng = np.random.default_rng(0)

    def sample(crops, count):
        return crops.subset(np.sort(rng.choice(len(crops), size=min(count, len(crops)), replace=False)))

    held_out = {name: crops for name, crops in splits.items() if name.endswith("_val")}
    celeba = splits["celeba_train"]
    people = rng.choice(np.unique(celeba.identity), size=len(np.unique(held_out["celeba_val"].identity)), replace=False)
    seen = {
        "ferplus_val": sample(splits["ferplus_train"], len(held_out["ferplus_val"])),
        "utk_val": sample(splits["utk_train"], len(held_out["utk_val"])),
        "celeba_val": celeba.subset(np.isin(celeba.identity, people)),
    }
    for name, chosen in (("training samples", seen), ("held out", held_out)):
        figures = headline(evaluate_splits(model, config, chosen))
        print(f"{name:>16}: " + json.dumps({k: round(v, 3) for k, v in figures.items()}))


if __name__ == "__main__":
    main()
