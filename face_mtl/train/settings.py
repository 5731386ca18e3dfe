"""Training settings: one frozen object, saved with every run."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, fields

from ..data.sets import TEACHER_TARGETS, TEACHER_VIEWS

# Identity heads the export can keep (train/embedding.py); "best" chooses among them.
IDENTITY_HEADS = ("trained", "pca", "lda")
CHOICES = {"precision": ("auto", "bf16", "fp32"), "embedding_head": ("best", *IDENTITY_HEADS),
           "teacher_target": TEACHER_TARGETS, "teacher_views": TEACHER_VIEWS}


@dataclass(frozen=True)
class TrainSettings:
    data_dir: str = "../shared/data"
    cache_dir: str = ".cache"
    run_dir: str = "runs/mtl"
    export_dir: str | None = None  # also export the final EMA weights here (e.g. face_mtl/assets)
    init_weights: str | None = None  # continue from a weights folder (e.g. the shipped weights)
    # The network issue 10's sweep chose (training/HISTORY.md), as shipped, so that
    # --init-weights face_mtl/assets continues the shipped weights without more flags.
    backbone: str = "resnet18"
    input_size: int = 64
    epochs: int = 14
    max_hours: float = 2.0  # wall-time budget: the cosine schedule ends by then, whatever the epochs
    max_steps: int | None = None  # per epoch; for smoke tests
    # Validate, checkpoint and export every this many epochs (and at the end). 1 on a CPU; on a
    # GPU an epoch takes seconds, and validating each one would cost as much as training.
    eval_every: int = 1
    # Also keep the EMA weights of every this many validated epochs, and of the last, in
    # run_dir/epochs/NNN (0: only the latest, run_dir/export). Heads peak at different epochs (age over-fits
    # from about epoch 5 while expression keeps improving), and weights along one run can be
    # averaged afterwards (train/average.py), so each epoch's weights are worth keeping.
    snapshot_every: int = 0
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    ema_decay: float = 0.999
    bn_recalibration_batches: int = 100  # BatchNorm statistics re-estimated for the final EMA
    batch_emotion: int = 64
    batch_utk: int = 48
    batch_identity: int = 16
    loss_emotion: float = 1.0
    loss_age: float = 1.0
    loss_gender: float = 0.5
    loss_ethnicity: float = 0.5
    loss_identity: float = 0.5
    loss_teacher: float = 5.0  # distillation from dlib's descriptors, where cached (train/teacher.py)
    # What the embedding is pulled towards: the descriptors as dlib gives them ("raw"), or minus
    # the training faces' mean descriptor and scaled to unit length ("centred", the part that
    # tells people apart: data/sets.py attach_teacher).
    teacher_target: str = "raw"
    # What the teacher described: each whole photo ("photos"), or the student's own cached crops
    # at its input size ("crops": python -m face_mtl.train.teacher --views crops), so that the
    # targets hold only what the student's input holds.
    teacher_views: str = "photos"
    # Relational distillation (train/losses.py teacher_relation_loss): the squared gap between
    # the student's and the teacher's cosine similarity of every two faces of a batch. 0: off.
    loss_teacher_relation: float = 0.0
    # Learning without forgetting (train/reference.py): the age, gender and ethnicity heads are
    # also pulled (KL divergence, this weight) towards what the reference weights in this folder
    # predict for every training face, so that they keep its accuracy while the backbone moves.
    reference_weights: str | None = None
    loss_reference: float = 0.0
    # Exported identity head: "trained" (the head as trained), "pca" (principal axes of the
    # backbone features), "lda" (Fisher's axes over the training people), or "best": whichever
    # of the three verifies the held-out CelebA people best (train/embedding.py).
    embedding_head: str = "best"
    # Share of training views with one random rectangle hidden (train/augment.py; 0: off).
    erase_p: float = 0.0
    # Stochastic depth (train/stochastic_depth.py): the deepest residual block's branch is
    # skipped for this share of the samples, shallower ones for linearly less. Training only.
    drop_path: float = 0.0
    emotion_weight_power: float = 0.3  # class weights ~ frequency ** -power (imbalance handling)
    # Logit adjustment of the expression loss (train/losses.py multitask_loss): tau in
    # logits + tau * log(class prior). 0: off; 1: the balanced-error optimum of Menon et al.
    emotion_logit_adjustment: float = 0.0
    # P(happiness) against CelebA's "smiling" on celeba_wild faces (train/losses.py smiling_loss).
    loss_smiling: float = 0.0
    seed: int = 0
    device: str | None = None
    # Batches assembled this many steps ahead in a worker thread. Off by default: on 2 cores the
    # worker competes with the network's threads (resnet18 64 px, bench/train_throughput.py:
    # 250 img/s in sequence, 225 prefetched; the data path alone runs at 8000 img/s).
    prefetch_batches: int = 0
    precision: str = "auto"  # bf16 (autocast), fp32, or auto: bf16 on CUDA and CPUs with native bf16
    threads: int | None = None

    def __post_init__(self) -> None:
        # Checked before any data is read or hours are spent, not when first used.
        if self.eval_every < 1:
            raise ValueError(f"eval_every must be at least 1, not {self.eval_every}")
        if not 0.0 <= self.erase_p <= 1.0:
            raise ValueError(f"erase_p must be between 0 and 1, not {self.erase_p}")
        if not 0.0 <= self.drop_path < 1.0:
            raise ValueError(f"drop_path must be at least 0 and below 1, not {self.drop_path}")
        if self.loss_reference < 0:
            raise ValueError(f"loss_reference must be 0 (off) or more, not {self.loss_reference}")
        if self.loss_reference > 0 and not self.reference_weights:
            raise ValueError("loss_reference needs reference_weights: the weights folder whose predictions are the targets")
        if self.emotion_logit_adjustment < 0 or self.loss_smiling < 0:
            raise ValueError("emotion_logit_adjustment and loss_smiling must be 0 (off) or more")
        if self.snapshot_every < 0:
            raise ValueError(f"snapshot_every must be 0 (off) or more, not {self.snapshot_every}")
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}")

    @property
    def loss_weights(self) -> dict[str, float]:
        return {
            "emotion": self.loss_emotion,
            "age": self.loss_age,
            "gender": self.loss_gender,
            "ethnicity": self.loss_ethnicity,
            "identity": self.loss_identity,
            "teacher": self.loss_teacher,
            "teacher_relation": self.loss_teacher_relation,
            "reference": self.loss_reference,
            "smiling": self.loss_smiling,
        }

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> "TrainSettings":
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)})


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """One --flag per TrainSettings field, defaults and types taken from the dataclass."""
    defaults = TrainSettings()
    for f in fields(TrainSettings):
        default = getattr(defaults, f.name)
        kind = {int: int, float: float}.get(type(default), str)
        if f.type in ("int | None",):
            kind = int
        if f.type in ("float | None",):
            kind = float
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=kind, default=default,
                            choices=CHOICES.get(f.name), help=f"(default: {default})")
