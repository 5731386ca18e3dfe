"""Masked multi-task losses: each sample contributes only the labels it has."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# The heads a reference network teaches, in the order of their columns in the targets
# (train/reference.py caches them in this order).
REFERENCE_HEADS = ("age", "gender", "ethnicity")


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy against a target distribution (rows of ``target`` sum to 1).

    ``class_weights`` weight each sample by its target's expected class weight, so rare
    classes count more; reweighting inside the target instead would cancel for one-hot votes.
    """
    per_sample = -(target * F.log_softmax(logits.float(), dim=1)).sum(dim=1)
    if class_weights is None:
        return per_sample.mean()
    sample_weights = target @ class_weights
    return (sample_weights * per_sample).sum() / sample_weights.sum().clamp_min(1e-8)


def smiling_loss(emotion_logits: torch.Tensor, smiling: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of P(happiness) (the emotion head's softmax) against CelebA's
    ``smiling`` attribute (1/0): colour in-the-wild faces that FER+'s grey crops lack."""
    from ..config import EMOTIONS

    log_p = F.log_softmax(emotion_logits.float(), dim=1)
    happy = EMOTIONS.index("happiness")
    log_happy = log_p[:, happy]
    log_other = torch.logsumexp(torch.cat([log_p[:, :happy], log_p[:, happy + 1 :]], dim=1), dim=1)
    target = smiling.float()
    return -(target * log_happy + (1 - target) * log_other).mean()


def age_loss(logits: torch.Tensor, years: torch.Tensor, sigma: float = 2.5, l1_weight: float = 0.05) -> torch.Tensor:
    """Distribution over whole years: CE against a Gaussian around the true age + L1 of the mean."""
    bins = torch.arange(logits.shape[1], dtype=torch.float32, device=logits.device)
    target = torch.exp(-0.5 * ((bins[None, :] - years[:, None]) / sigma) ** 2)
    target = target / target.sum(dim=1, keepdim=True)
    expected = (logits.float().softmax(dim=1) * bins).sum(dim=1)
    return soft_cross_entropy(logits, target) + l1_weight * (expected - years).abs().mean()


class CosFaceHead(nn.Module):
    """Large-margin cosine classifier over unit embeddings (dropped at export)."""

    def __init__(self, embedding_size: int, classes: int, scale: float = 30.0, margin: float = 0.35) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, embedding_size) * 0.01)
        self.scale, self.margin = scale, margin

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cosine = F.linear(F.normalize(embeddings.float(), dim=1), F.normalize(self.weight, dim=1))
        margins = F.one_hot(labels, cosine.shape[1]).float() * self.margin
        return F.cross_entropy(self.scale * (cosine - margins), labels)


def teacher_loss(embeddings: torch.Tensor, descriptors: torch.Tensor) -> torch.Tensor:
    """Mean cosine distance between unit embeddings and the teacher's descriptors (distillation:
    the embedding's directions follow a face-recognition model that knows far more people)."""
    return (1.0 - (embeddings.float() * F.normalize(descriptors.float(), dim=1)).sum(dim=1)).mean()


def teacher_relation_loss(embeddings: torch.Tensor, descriptors: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between the cosine similarities of every two faces of the batch,
    the student's against the teacher's (relational distillation, Park et al., CVPR 2019).

    ``teacher_loss`` pulls each embedding towards its descriptor; this asks only that faces be
    as alike to each other as the teacher finds them, the quantity verification thresholds,
    and leaves the embedding free to turn as a whole. 0 for fewer than two faces."""
    if len(embeddings) < 2:
        return embeddings.float().sum() * 0.0
    student = F.normalize(embeddings.float(), dim=1)
    teacher = F.normalize(descriptors.float(), dim=1)
    others = ~torch.eye(len(student), dtype=torch.bool, device=student.device)
    return ((student @ student.T - teacher @ teacher.T)[others] ** 2).mean()


def reference_loss(outputs: dict[str, torch.Tensor], targets: torch.Tensor, heads: tuple[str, ...]) -> torch.Tensor:
    """Sum over ``heads`` of the mean KL divergence from a reference network's probabilities
    (``targets``: each head's columns side by side, in ``heads`` order, as train/reference.py
    caches them) to the student's: 0 where the student predicts what the reference did."""
    widths = [outputs[head].shape[1] for head in heads]
    if sum(widths) != targets.shape[1]:
        raise ValueError(f"reference targets have {targets.shape[1]} columns, the heads {', '.join(heads)} {sum(widths)}")
    total, start = outputs[heads[0]].float().sum() * 0.0, 0
    for head, width in zip(heads, widths):
        target = targets[:, start : start + width].float()
        start += width
        total = total + F.kl_div(F.log_softmax(outputs[head].float(), dim=1), target, reduction="sum") / len(target)
    return total


def multitask_loss(outputs, batch, cosface: CosFaceHead, weights: dict[str, float], emotion_class_weights,
                   emotion_logit_offset: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Per-task losses over the samples that carry each label, and their weighted ``total``.

    ``emotion_logit_offset``: added to the emotion logits inside the expression loss only
    (logit adjustment, Menon et al. 2021: tau * log(class prior)), so that the head's own
    logits learn to lean less towards the frequent classes."""
    losses: dict[str, torch.Tensor] = {}
    has_emotion = batch["emotion"].sum(dim=1) > 0
    if has_emotion.any():
        logits = outputs["emotion"][has_emotion].float()
        if emotion_logit_offset is not None:
            logits = logits + emotion_logit_offset
        losses["emotion"] = soft_cross_entropy(logits, batch["emotion"][has_emotion], emotion_class_weights)
    has_smiling = batch["smiling"] >= 0 if "smiling" in batch else None
    if weights.get("smiling", 0.0) > 0 and has_smiling is not None and has_smiling.any():
        losses["smiling"] = smiling_loss(outputs["emotion"][has_smiling], batch["smiling"][has_smiling])
    has_age = ~torch.isnan(batch["age"])
    if has_age.any():
        losses["age"] = age_loss(outputs["age"][has_age], batch["age"][has_age])
    for task in ("gender", "ethnicity"):
        has = batch[task] >= 0
        if has.any():
            losses[task] = F.cross_entropy(outputs[task][has].float(), batch[task][has], label_smoothing=0.05)
    has_identity = batch["identity"] >= 0
    if has_identity.any():
        losses["identity"] = cosface(outputs["embedding"][has_identity], batch["identity"][has_identity])
    has_teacher = batch["teacher"].abs().sum(dim=1) > 0 if "teacher" in batch else None
    if weights.get("teacher", 0.0) > 0 and has_teacher is not None and has_teacher.any():
        losses["teacher"] = teacher_loss(outputs["embedding"][has_teacher], batch["teacher"][has_teacher])
    if weights.get("teacher_relation", 0.0) > 0 and has_teacher is not None and has_teacher.sum() >= 2:
        losses["teacher_relation"] = teacher_relation_loss(outputs["embedding"][has_teacher], batch["teacher"][has_teacher])
    # Reference targets (train/reference.py): every face that has them, labelled or not. Rows
    # of zeros (no targets) are skipped; training gives every training split targets.
    if weights.get("reference", 0.0) > 0 and "reference" in batch and batch["reference"].shape[1] > 0:
        has_reference = batch["reference"].sum(dim=1) > 0
        if has_reference.any():
            losses["reference"] = reference_loss({h: outputs[h][has_reference] for h in REFERENCE_HEADS},
                                                 batch["reference"][has_reference], REFERENCE_HEADS)
    losses["total"] = sum(weights[name] * value for name, value in losses.items())
    return losses
