"""Average the weights of runs of one lineage (a "model soup", Wortsman et al., ICML 2022).

Runs that continue one another stay in one basin, so their weights can be averaged: the mean
often keeps what each run gained (session 10: a run on a GPU lifted expression and gender but
over-fitted age; averaged with the weights it started from, age came back). BatchNorm
statistics are averaged too. The identity head of the average means nothing until it is
refitted (``face-mtl identity-head``), which the printed command does.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..config import ModelConfig
from ..weights import CONFIG_FILE, WEIGHTS_FILE, resolve_weights, write_config


def average_state(states: list[dict[str, torch.Tensor]], weights: list[float]) -> dict[str, torch.Tensor]:
    """Weighted mean of state dicts with the same keys and shapes (integer buffers: the last's)."""
    if len(states) != len(weights) or not states:
        raise ValueError(f"{len(states)} weight files for {len(weights)} averaging weights")
    keys = set(states[0])
    for state in states[1:]:
        if set(state) != keys or any(state[k].shape != states[0][k].shape for k in keys):
            raise ValueError("the weights differ in their tensors: only one network's runs can be averaged")
    total = sum(weights)
    averaged = {}
    for key, first in states[0].items():
        if first.is_floating_point():
            mean = sum(w * s[key].double() for w, s in zip(weights, states)) / total
            averaged[key] = mean.to(first.dtype)
        else:
            averaged[key] = states[-1][key]
    return averaged


def average_weights(folders: list[str | Path], out: str | Path, weights: list[float] | None = None) -> Path:
    """Write the weighted mean of ``folders``' weights to ``out`` with the last folder's config,
    which records what was averaged (``training.weight_average``)."""
    paths = [resolve_weights(folder) for folder in folders]
    weights = weights or [1.0] * len(paths)
    configs = [ModelConfig.from_json(path / CONFIG_FILE) for path in paths]
    if len({(c.backbone, c.input_size, c.embedding_size) for c in configs}) != 1:
        raise ValueError("the weights are of different networks (backbone, input size or embedding size)")
    state = average_state([load_file(str(path / WEIGHTS_FILE)) for path in paths], weights)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out / WEIGHTS_FILE))
    record = {"of": [str(folder) for folder in folders], "weights": weights,
              "summaries": [c.metrics.get("summary") for c in configs]}
    write_config(out, configs[-1].with_updates(training={**configs[-1].training, "weight_average": record}))
    return out


def recalibrate_averaged(folder: str | Path, data_dir: str | Path, cache_dir: str | Path, batches: int = 100,
                         seed: int = 0) -> None:
    """Re-estimate the BatchNorm statistics of averaged weights over ``batches`` training
    batches (what every run does to its EMA weights at the end), in place: averaged statistics
    belong to none of the averaged weights."""
    from ..data.sets import build_splits, identity_faces
    from ..weights import load_model, save_model
    from .augment import AugmentSettings
    from .loop import Cycler, recalibrate_batchnorm, training_views
    from .settings import TrainSettings

    model, config = load_model(folder, device="cpu")
    splits = build_splits(Path(data_dir), Path(cache_dir), config.input_size)
    defaults, generator = TrainSettings(), torch.Generator().manual_seed(seed)
    parts = [(splits["ferplus_train"], defaults.batch_emotion), (splits["utk_train"], defaults.batch_utk),
             (identity_faces(splits), defaults.batch_identity)]
    cyclers = [Cycler(len(crop_set), generator) for crop_set, _ in parts]

    def draw() -> torch.Tensor:
        chosen = [(crop_set, cycler.take(size)) for (crop_set, size), cycler in zip(parts, cyclers)]
        return training_views(chosen, config, AugmentSettings(), generator, "cpu")[0]

    model.to(memory_format=torch.channels_last)
    recalibrate_batchnorm(model, draw, batches)
    save_model(model, config, folder)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Average the weights of runs of one network (a model soup)")
    parser.add_argument("weights", nargs="+", help="weights folders (runs of one lineage)")
    parser.add_argument("--out", required=True, help="folder for the averaged weights")
    parser.add_argument("--mix", type=float, nargs="+", help="averaging weights, one per folder (default equal)")
    parser.add_argument("--recalibrate-batches", type=int, default=100,
                        help="training batches that re-estimate BatchNorm statistics (0: keep their average)")
    parser.add_argument("--data", default="../shared/data", help="training data folder (default ../shared/data)")
    parser.add_argument("--cache", default=".cache", help="crop cache folder (default .cache)")
    args = parser.parse_args(argv)
    if len(args.weights) < 2:
        parser.error("give at least two weights folders")
    if args.mix is not None and (len(args.mix) != len(args.weights) or min(args.mix) < 0 or sum(args.mix) <= 0):
        parser.error("--mix needs one non-negative number per weights folder, not all zero")
    out = average_weights(args.weights, args.out, args.mix)
    if args.recalibrate_batches > 0:
        recalibrate_averaged(out, args.data, args.cache, args.recalibrate_batches)
    print(f"averaged {len(args.weights)} weights into {out}; refit its identity head next:")
    print(f"  face-mtl identity-head --weights {out} --out {out}_ship")


if __name__ == "__main__":
    main()
