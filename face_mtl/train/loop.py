"""The training loop: mixed multi-task batches, AdamW + cosine, EMA, atomic resumable checkpoints."""

from __future__ import annotations

import copy
import json
import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ..config import ModelConfig
from ..data.sets import CropSet, attach_teacher, build_splits, identity_faces, teacher_folder, views_of
from ..evaluate import evaluate_splits, headline, pair_scores, verification_calibration
from ..model import FaceMTLNet, cpu_has_native_bf16
from ..weights import load_model, save_model
from .augment import AugmentSettings, augment_batch
from .embedding import fit_identity_head
from .losses import CosFaceHead, multitask_loss
from .reference import attach_reference
from .runlog import append_line
from .settings import TrainSettings
from .stochastic_depth import set_drop_path

CHECKPOINT = "checkpoint.safetensors"
STATE = "state.json"
SETTINGS_FILE = "settings.json"  # the run's settings, as resumed and as persisted
EXPORT_DIR = "export"  # the finished run's weights
LABEL_FIELDS = ("emotion", "age", "gender", "ethnicity", "identity", "teacher", "reference", "smiling")


class Cycler:
    """Endless shuffled indices over a set, reshuffled at every pass (seeded)."""

    def __init__(self, size: int, generator: torch.Generator) -> None:
        self.size, self.generator = size, generator
        self.order, self.position = torch.randperm(size, generator=generator), 0

    def take(self, count: int) -> np.ndarray:
        taken = []
        while count > 0:
            if self.position >= self.size:
                self.order, self.position = torch.randperm(self.size, generator=self.generator), 0
            chunk = self.order[self.position : self.position + count]
            taken.append(chunk)
            self.position += len(chunk)
            count -= len(chunk)
        return torch.cat(taken).numpy()


def make_batch(parts: list[tuple[CropSet, np.ndarray]]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    crops = torch.from_numpy(np.concatenate([s.crops[i] for s, i in parts]))
    labels = {f: torch.from_numpy(np.concatenate([getattr(s, f)[i] for s, i in parts])) for f in LABEL_FIELDS}
    return crops, labels


def training_views(parts: list[tuple[CropSet, np.ndarray]], config: ModelConfig, augment: AugmentSettings,
                   generator: torch.Generator, device: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One mixed training batch: random augmented views of the crops ``parts`` picks, on
    ``device`` (channels-last), and their labels there."""
    crops, labels = make_batch(parts)
    zoomable = labels["emotion"].sum(dim=1) > 0
    # uint8 crops travel to the device (a quarter of the float bytes), augmented there.
    x = augment_batch(crops.to(device), config.input_size, config.mean, config.std, augment, generator, zoomable)
    return x.contiguous(memory_format=torch.channels_last), {k: v.to(device) for k, v in labels.items()}


def prefetched(make: Callable[[int], Any], count: int, depth: int = 2) -> Iterator[Any]:
    """``make(0)``, ``make(1)``, ... ``make(count - 1)``, each computed ``depth`` ahead in one
    worker thread: batch assembly and augmentation overlap the network's step (torch releases
    the GIL). One worker keeps the calls in order, so seeded draws stay reproducible."""
    with ThreadPoolExecutor(1, thread_name_prefix="batches") as pool:
        pending = deque(pool.submit(make, i) for i in range(min(depth, count)))
        for i in range(count):
            result = pending.popleft().result()
            if i + depth < count:
                pending.append(pool.submit(make, i + depth))
            yield result


def autocast_for(device: str, precision: str):
    """The autocast context for a precision name: "bf16" (bfloat16 autocast), "fp32" (none),
    or "auto" (bf16 on CUDA and on CPUs with native bfloat16, fp32 elsewhere)."""
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, not {precision!r}")
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    bf16 = precision == "bf16" or (precision == "auto" and (device_type == "cuda" or cpu_has_native_bf16()))
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16)


def emotion_prior(emotion_targets: np.ndarray) -> np.ndarray:
    """Each expression's share of the training targets' votes."""
    return emotion_targets.sum(axis=0) / emotion_targets.sum()


def emotion_logit_offset(emotion_targets: np.ndarray, tau: float) -> torch.Tensor | None:
    """tau * log(class prior) of the expression targets (logit adjustment), None when tau is 0."""
    if tau <= 0:
        return None
    return torch.tensor(tau * np.log(np.maximum(emotion_prior(emotion_targets), 1e-4)), dtype=torch.float32)


def emotion_class_weights(emotion_targets: np.ndarray, power: float) -> torch.Tensor:
    """Weights ~ frequency ** -power, scaled so the average sample keeps weight 1."""
    frequency = emotion_prior(emotion_targets)
    weights = np.power(np.maximum(frequency, 1e-4), -power)
    weights = weights / (weights * frequency).sum()
    return torch.tensor(weights, dtype=torch.float32)


def lr_factor(step: int, warmup: int, progress: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 1% as progress goes 0 -> 1."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def schedule_progress(step: int, total_steps: int, elapsed: float, budget_seconds: float) -> float:
    """How far the run is, by steps or by wall time, whichever is further: the cosine
    schedule then ends inside the time budget even when the CPU is shared."""
    return max(step / max(1, total_steps), elapsed / budget_seconds)


def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """Exponential moving average of weights and of float buffers (BatchNorm statistics):
    copying the live model's statistics onto lagging weights mismatches them badly."""
    with torch.no_grad():
        # One fused update over all tensors (hundreds of kernel launches fewer a step on a GPU).
        torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - decay)
        floats = [(e, b) for e, b in zip(ema.buffers(), model.buffers()) if e.dtype.is_floating_point]
        if floats:
            torch._foreach_lerp_([e for e, _ in floats], [b for _, b in floats], 1.0 - decay)
        for e, b in zip(ema.buffers(), model.buffers()):
            if not e.dtype.is_floating_point:
                e.copy_(b)


def recalibrate_batchnorm(model: torch.nn.Module, draw_batch, batches: int) -> None:
    """Re-estimate BatchNorm statistics of (EMA) weights as exact averages over ``batches``
    training batches from ``draw_batch()``, so the statistics match the weights."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or batches <= 0:
        return
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches seen
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(draw_batch())
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    model.eval()


def _param_groups(model: torch.nn.Module, cosface: torch.nn.Module, weight_decay: float):
    decay, no_decay = [], []
    for p in list(model.parameters()) + list(cosface.parameters()):
        (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def save_checkpoint(
    run_dir: Path, modules: dict[str, torch.nn.Module], optimizer, state: dict[str, Any], generator: torch.Generator,
    cyclers: dict[str, Cycler],
) -> None:
    """Weights, optimizer moments, RNG states, sampler positions and progress in one safetensors
    file, renamed into place (never half-written); state.json beside it is a readable copy."""
    tensors = {f"{name}/{k}": v.detach().cpu().contiguous() for name, m in modules.items() for k, v in m.state_dict().items()}
    for name, cycler in cyclers.items():
        tensors[f"cycler/{name}"] = cycler.order.contiguous()
    state = {**state, "cycler_positions": {name: cycler.position for name, cycler in cyclers.items()}}
    optim_state = optimizer.state_dict()
    for index, values in optim_state["state"].items():
        for key, value in values.items():
            tensors[f"optim/{index}/{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["rng/torch"] = torch.get_rng_state()
    tensors["rng/generator"] = generator.get_state()
    state = {**state, "param_groups": [{k: v for k, v in g.items() if k != "params"} for g in optim_state["param_groups"]]}
    tmp = run_dir / (CHECKPOINT + ".tmp")
    save_file(tensors, str(tmp), metadata={"state": json.dumps(state)})
    tmp.replace(run_dir / CHECKPOINT)
    tmp_state = run_dir / (STATE + ".tmp")
    tmp_state.write_text(json.dumps(state, indent=1), encoding="utf-8")
    tmp_state.replace(run_dir / STATE)


def load_checkpoint(
    run_dir: Path, modules: dict[str, torch.nn.Module], optimizer, generator: torch.Generator,
    cyclers: dict[str, Cycler],
) -> dict[str, Any]:
    tensors = load_file(str(run_dir / CHECKPOINT))
    with safe_open(str(run_dir / CHECKPOINT), "pt") as handle:
        metadata = handle.metadata() or {}
    if "state" in metadata:
        state = json.loads(metadata["state"])
    else:  # checkpoints written before the state moved into the file
        state = json.loads((run_dir / STATE).read_text(encoding="utf-8"))
    for name, module in modules.items():
        prefix = f"{name}/"
        module.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    optim_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim/"):
            _, index, field = key.split("/")
            optim_state.setdefault(int(index), {})[field] = value
    groups = optimizer.state_dict()["param_groups"]
    for group, saved in zip(groups, state["param_groups"]):
        group.update(saved)
    optimizer.load_state_dict({"state": optim_state, "param_groups": groups})
    torch.set_rng_state(tensors["rng/torch"])
    if "rng/generator" in tensors:
        generator.set_state(tensors["rng/generator"])
    for name, position in state.get("cycler_positions", {}).items():
        # Checkpoints written before the positions were saved resume with fresh shuffles.
        if f"cycler/{name}" in tensors and len(tensors[f"cycler/{name}"]) == cyclers[name].size:
            cyclers[name].order, cyclers[name].position = tensors[f"cycler/{name}"], position
    return state


def train(settings: TrainSettings) -> Path:
    """Train (or resume) a run in ``settings.run_dir``; returns the exported weights folder."""
    from tqdm import tqdm

    from ..analyzer import default_device

    device = settings.device or default_device()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    generator = torch.Generator().manual_seed(settings.seed)
    run_dir = Path(settings.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    splits = build_splits(Path(settings.data_dir), Path(settings.cache_dir), settings.input_size)
    # Seeded after the cache is built: building it creates the detector, which draws from the
    # global RNG, so a run that builds the cache would otherwise start from other weights.
    torch.manual_seed(settings.seed)
    views = views_of(settings.teacher_views, settings.input_size)
    teacher_files = (_teacher_files(Path(settings.cache_dir), views)
                     if max(settings.loss_teacher, settings.loss_teacher_relation) > 0 else None)
    with_teacher = attach_teacher(splits, Path(settings.cache_dir), settings.teacher_target, views) if teacher_files is not None else []
    parent = None
    if settings.init_weights:
        model, config = load_model(settings.init_weights, device="cpu")
        if config.input_size != settings.input_size:
            # The network pools globally, so its weights run at any size: a run may continue
            # another run's weights at a new input size (how the 72 px weights began).
            append_line(run_dir, f"--init-weights: {config.input_size} px weights continue at {settings.input_size} px")
            config = config.with_updates(input_size=settings.input_size)
        # The exported config keeps the lineage: how the starting weights were made.
        parent = {"weights": settings.init_weights, "training": config.training, "metrics": config.metrics.get("summary")}
    else:
        config = ModelConfig(backbone=settings.backbone, input_size=settings.input_size)
        model = FaceMTLNet(config)
    reference_key, with_reference = (
        attach_reference(splits, settings.reference_weights, config, settings.cache_dir, device)
        if settings.loss_reference > 0 else (None, []))
    fer, utk, celeba = splits["ferplus_train"], splits["utk_train"], identity_faces(splits)
    identities = int(celeba.identity.max()) + 1
    cosface = CosFaceHead(config.embedding_size, identities)
    model.to(device).to(memory_format=torch.channels_last)
    cosface.to(device)
    ema = copy.deepcopy(model).eval()
    if settings.drop_path > 0:  # after the EMA copy: its BatchNorm re-estimation runs in train mode
        set_drop_path(model.backbone, settings.drop_path)
    on_gpu = device.startswith("cuda")
    if on_gpu:
        torch.backends.cudnn.benchmark = True  # fixed batch shapes: pick the fastest kernels once
    # fused: one kernel for the whole update on a GPU; the CPU keeps the default implementation.
    optimizer = torch.optim.AdamW(_param_groups(model, cosface, settings.weight_decay), lr=settings.lr,
                                  fused=True if on_gpu else None)
    modules = {"model": model, "ema": ema, "cosface": cosface}

    steps_per_epoch = len(fer) // settings.batch_emotion
    if steps_per_epoch == 0:
        raise ValueError(f"{len(fer)} FER+ images are fewer than one batch of {settings.batch_emotion}")
    if settings.max_steps:
        steps_per_epoch = min(steps_per_epoch, settings.max_steps)
    total_steps = steps_per_epoch * settings.epochs
    warmup = round(settings.warmup_epochs * steps_per_epoch)
    state: dict[str, Any] = {"epoch": 0, "step": 0, "elapsed": 0.0, "history": []}
    cyclers = {name: Cycler(len(s), generator) for name, s in (("fer", fer), ("utk", utk), ("celeba", celeba))}
    if (run_dir / CHECKPOINT).exists():
        state = load_checkpoint(run_dir, modules, optimizer, generator, cyclers)
        append_line(run_dir, f"resumed {run_dir} at epoch {state['epoch']}")
    (run_dir / SETTINGS_FILE).write_text(json.dumps(settings.to_dict(), indent=2), encoding="utf-8")
    append_line(run_dir, f"identity teacher descriptors: {', '.join(with_teacher) or 'none cached'}")
    if with_reference:
        append_line(run_dir, f"reference targets from {settings.reference_weights} (cache {reference_key}): "
                             f"{', '.join(with_reference)}")

    class_weights = emotion_class_weights(fer.emotion, settings.emotion_weight_power).to(device)
    logit_offset = emotion_logit_offset(fer.emotion, settings.emotion_logit_adjustment)
    logit_offset = logit_offset.to(device) if logit_offset is not None else None
    augment = AugmentSettings(erase_p=settings.erase_p)
    started = time.time() - state["elapsed"]
    budget = settings.max_hours * 3600
    autocast = autocast_for(device, settings.precision)
    if settings.precision == "bf16" and device == "cpu" and not cpu_has_native_bf16():
        # Measured on an AVX2-only EPYC: resnet18 trained 8x slower under bf16 autocast than in fp32.
        append_line(run_dir, "warning: --precision bf16 on a CPU without native bfloat16 (AVX512-BF16 or AMX) "
                             "is emulated and several times slower than fp32; use --precision fp32 or auto")

    def draw_batch(order: np.ndarray | None = None, step: int = 0):
        fer_indices = (
            order[step * settings.batch_emotion : (step + 1) * settings.batch_emotion]
            if order is not None
            else cyclers["fer"].take(settings.batch_emotion)
        )
        return training_views([
            (fer, fer_indices),
            (utk, cyclers["utk"].take(settings.batch_utk)),
            (celeba, cyclers["celeba"].take(settings.batch_identity)),
        ], config, augment, generator, device)

    val_splits = {k: v for k, v in splits.items() if k.endswith("_val")}
    finished = state["epoch"] >= settings.epochs or schedule_progress(state["step"], total_steps, state["elapsed"], budget) >= 1.0
    # Losses and timing accumulate over the epochs between two validations (--eval-every).
    sums: dict[str, torch.Tensor] = {}  # summed where computed: no device sync each step
    steps_done, block_start = 0, time.time()
    while not finished:
        epoch = state["epoch"] + 1
        # A teacher cache still being built (train/teacher.py, rewritten every 500 faces) is
        # read again each epoch, so a run started beside it learns from every descriptor so far.
        current = _teacher_files(Path(settings.cache_dir), views) if teacher_files is not None else None
        if current != teacher_files:
            teacher_files = current
            with_teacher = attach_teacher(splits, Path(settings.cache_dir), settings.teacher_target, views)
            fer, utk, celeba = splits["ferplus_train"], splits["utk_train"], identity_faces(splits)
            described = {name: len(splits[name].described()) for name in with_teacher}
            append_line(run_dir, f"identity teacher descriptors reread: {described}")
        model.train()
        order = torch.randperm(len(fer), generator=generator).numpy()
        progress = 0.0
        if settings.prefetch_batches > 0:
            batches = prefetched(lambda step, order=order: draw_batch(order, step), steps_per_epoch,
                                 settings.prefetch_batches)
        else:
            batches = (draw_batch(order, step) for step in range(steps_per_epoch))
        progress_bar = tqdm(batches, total=steps_per_epoch, desc=f"epoch {epoch}/{settings.epochs}", unit="step", mininterval=30)
        for x, labels in progress_bar:
            progress = schedule_progress(state["step"], total_steps, time.time() - started, budget)
            if progress >= 1.0:
                break
            for group in optimizer.param_groups:
                group["lr"] = settings.lr * lr_factor(state["step"], warmup, progress)
            with autocast:
                outputs = model(x)
            losses = multitask_loss(outputs, labels, cosface, settings.loss_weights, class_weights, logit_offset)
            optimizer.zero_grad(set_to_none=True)
            losses["total"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            update_ema(ema, model, settings.ema_decay if state["step"] > warmup else 0.9)
            state["step"] += 1
            steps_done += 1
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + value.detach().float()
        batches.close()  # a budget stop leaves prefetched batches behind
        if steps_done == 0 and progress >= 1.0 and state["history"]:
            # The budget ran out before this epoch's first step: the last validation stands.
            append_line(run_dir, f"stopping before epoch {epoch}: --max-hours {settings.max_hours} reached")
            break
        state["epoch"], state["elapsed"] = epoch, time.time() - started
        finished = progress >= 1.0 or state["epoch"] >= settings.epochs
        if not finished and epoch % settings.eval_every:
            continue
        seconds = time.time() - block_start
        identity = pair_scores(ema, config, val_splits["celeba_val"], device)
        report = evaluate_splits(ema, config, val_splits, device, identity=identity)
        record = {
            "epoch": epoch,
            "train_loss": {k: round(float(v) / max(1, steps_done), 4) for k, v in sums.items()},
            "val": {k: round(v, 4) for k, v in headline(report).items()},
            "lr": optimizer.param_groups[0]["lr"],
            "steps": steps_done,
            "images_per_s": round(steps_done * len(x) / seconds, 1),
            "elapsed_min": round(state["elapsed"] / 60, 1),
        }
        state["history"].append(record)
        append_line(run_dir, json.dumps(record))
        save_checkpoint(run_dir, modules, optimizer, state, generator, cyclers)
        # Grouping thresholds by folder size take seconds: only the final export calibrates them.
        exported_config = _exported_config(config, settings, state, report, splits, parent,
                                           verification_calibration(identity, grouping_by_size=False))
        save_model(ema, exported_config, run_dir / EXPORT_DIR)
        # Counted in validated epochs; the last one is always kept (the final export replaces
        # run_dir/export with BatchNorm-recalibrated weights and a refitted identity head).
        if settings.snapshot_every and (finished or len(state["history"]) % settings.snapshot_every == 0):
            save_model(ema, exported_config, snapshot_dir(run_dir, epoch))
        if progress >= 1.0:
            append_line(run_dir, f"stopping in epoch {epoch}: --max-hours {settings.max_hours} reached")
        sums, steps_done, block_start = {}, 0, time.time()

    recalibrate_batchnorm(ema, lambda: draw_batch()[0], settings.bn_recalibration_batches)
    # A teacher-distilled head generalises to new people; a CosFace-only one over-fits the
    # training people, where closed-form heads (PCA, LDA) of the features do better.
    fitted = fit_identity_head(ema, config, splits, device, settings.embedding_head)
    append_line(run_dir, json.dumps({**fitted.summary, "celeba_train_images": len(celeba)}))
    append_line(run_dir, json.dumps({"final": {k: round(v, 4) for k, v in headline(fitted.report).items()},
                                     "bn_recalibration_batches": settings.bn_recalibration_batches}))
    final_config = _exported_config(config, settings, state, fitted.report, splits, parent, fitted.verification,
                                    identity_head=fitted.summary)
    exported = save_model(ema, final_config, run_dir / EXPORT_DIR)
    if settings.export_dir:
        exported = save_model(ema, final_config, Path(settings.export_dir))
    return exported


def snapshot_dir(run_dir: Path, epoch: int) -> Path:
    """Where ``--snapshot-every`` keeps the EMA weights validated after ``epoch``."""
    return Path(run_dir) / "epochs" / f"{epoch:03d}"


def _teacher_files(cache_dir: Path, views: str) -> dict[str, float]:
    """Modification times of the teacher cache's files, by name: changes when it grows."""
    return {path.name: path.stat().st_mtime for path in sorted((cache_dir / teacher_folder(views)).glob("*.npz"))}


def _exported_config(config, settings, state, report, splits, parent, verification=None,
                     identity_head=None) -> ModelConfig:
    """The config saved with the EMA weights: it records how they were made (with the identity
    head chosen at the end, ``identity_head``) and how they scored, and the same-person
    threshold calibrated with them (never the starting weights' one)."""
    training = {
        "data": {
            "ferplus_train": len(splits["ferplus_train"]),
            "utkface_train": len(splits["utk_train"]),
            "celeba_train": len(splits["celeba_train"]),
            "celeba_train_identities": len(np.unique(splits["celeba_train"].identity)),
            **({"celeba_wild_train": len(splits["celeba_wild_train"]),
                "celeba_wild_train_identities": len(np.unique(splits["celeba_wild_train"].identity))}
               if len(splits.get("celeba_wild_train", ())) else {}),
            "identity_classes": int(identity_faces(splits).identity.max()) + 1,  # the two sets' people together
        },
        "licences": "UTKFace and CelebA: non-commercial research only; FER2013 images: research use; FER+ labels: MIT",
        "settings": settings.to_dict(),
        "epochs_done": state["epoch"],
        "elapsed_minutes": round(state["elapsed"] / 60, 1),
        "history": state["history"],
    }
    if parent:
        training["initialised_from"] = parent
    if identity_head:
        training["identity_head"] = identity_head
    metrics = {"validation": report, "summary": headline(report)} if report else {}
    return config.with_updates(training=training, metrics=metrics, verification=verification or {})
