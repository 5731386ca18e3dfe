"""Training losses against hand-computed values."""

import math

import numpy as np
import pytest
import torch

from face_mtl.train.losses import soft_cross_entropy


def test_soft_cross_entropy_matches_hand_computed_value():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # softmax = [0.25, 0.75]
    target = torch.tensor([[0.5, 0.5]])
    expected = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    assert abs(soft_cross_entropy(logits, target).item() - expected) < 1e-6


def test_class_weights_weight_samples_even_with_one_hot_targets():
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])
    target = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # losses -log 0.25 and -log 0.75
    weights = torch.tensor([3.0, 1.0])
    weighted = soft_cross_entropy(logits, target, weights).item()
    expected = (3.0 * -math.log(0.25) + 1.0 * -math.log(0.75)) / 4.0
    assert abs(weighted - expected) < 1e-6
    assert weighted > soft_cross_entropy(logits, target).item()  # the rare, badly fit class counts more


def test_teacher_loss_is_the_cosine_distance_to_the_descriptor_direction():
    import torch.nn.functional as F

    from face_mtl.train.losses import teacher_loss

    descriptors = torch.tensor([[0.0, 0.3], [0.2, 0.0]])  # dlib's descriptors are not unit length
    aligned = F.normalize(descriptors, dim=1)
    assert abs(teacher_loss(aligned, descriptors).item()) < 1e-6
    assert abs(teacher_loss(-aligned, descriptors).item() - 2.0) < 1e-6
    orthogonal = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert abs(teacher_loss(orthogonal, descriptors).item() - 1.0) < 1e-6


def test_multitask_loss_distils_only_rows_with_teacher_descriptors():
    import torch.nn.functional as F

    from face_mtl.train.losses import CosFaceHead, multitask_loss

    n = 4
    embedding = F.normalize(torch.randn(n, 8), dim=1)
    outputs = {"emotion": torch.zeros(n, 8), "age": torch.zeros(n, 101), "gender": torch.zeros(n, 2),
               "ethnicity": torch.zeros(n, 5), "embedding": embedding}
    teacher = torch.zeros(n, 8)
    teacher[1] = embedding[1] * 0.5  # same direction: no loss from this row
    teacher[2] = -embedding[2]  # opposite: distance 2
    batch = {"emotion": torch.zeros(n, 8), "age": torch.full((n,), float("nan")),
             "gender": torch.full((n,), -1), "ethnicity": torch.full((n,), -1),
             "identity": torch.full((n,), -1), "teacher": teacher}
    weights = {"emotion": 1.0, "age": 1.0, "gender": 1.0, "ethnicity": 1.0, "identity": 1.0, "teacher": 3.0}
    losses = multitask_loss(outputs, batch, CosFaceHead(8, 2), weights, None)
    assert set(losses) == {"teacher", "total"}
    assert abs(losses["teacher"].item() - 1.0) < 1e-5  # mean of 0 and 2 over the two rows that have one
    assert abs(losses["total"].item() - 3.0) < 1e-5
    without = multitask_loss(outputs, batch, CosFaceHead(8, 2), {**weights, "teacher": 0.0}, None)
    assert "teacher" not in without


def test_teacher_relation_loss_compares_how_alike_faces_are_not_where_they_point():
    import torch.nn.functional as F

    from face_mtl.train.losses import teacher_relation_loss

    descriptors = torch.randn(6, 8, generator=torch.Generator().manual_seed(0))
    same_geometry = F.normalize(descriptors, dim=1) @ torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(4)))[0]  # turned as a whole
    assert teacher_relation_loss(same_geometry, descriptors * 3.0).item() < 1e-10
    # Hand-computed: two faces the teacher finds orthogonal, the student identical -> (1 - 0)^2.
    assert abs(teacher_relation_loss(torch.tensor([[1.0, 0.0], [1.0, 0.0]]),
                                     torch.tensor([[0.0, 2.0], [5.0, 0.0]])).item() - 1.0) < 1e-6
    assert teacher_relation_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])).item() == 0.0
    # Gradient steps on it bring the student's similarities towards the teacher's.
    student = torch.randn(6, 8, generator=torch.Generator().manual_seed(1), requires_grad=True)
    first = teacher_relation_loss(F.normalize(student, dim=1), descriptors)
    optimizer = torch.optim.SGD([student], lr=0.5)
    for _ in range(200):
        optimizer.zero_grad()
        teacher_relation_loss(F.normalize(student, dim=1), descriptors).backward()
        optimizer.step()
    assert teacher_relation_loss(F.normalize(student, dim=1), descriptors).item() < 0.05 * first.item()


def test_multitask_loss_adds_relational_distillation_only_when_weighted():
    import torch.nn.functional as F

    from face_mtl.train.losses import CosFaceHead, multitask_loss, teacher_relation_loss

    n = 5
    embedding = F.normalize(torch.randn(n, 8, generator=torch.Generator().manual_seed(2)), dim=1)
    outputs = {"emotion": torch.zeros(n, 8), "age": torch.zeros(n, 101), "gender": torch.zeros(n, 2),
               "ethnicity": torch.zeros(n, 5), "embedding": embedding}
    teacher = torch.randn(n, 8, generator=torch.Generator().manual_seed(3))
    teacher[0] = 0.0  # a face without a descriptor takes no part
    batch = {"emotion": torch.zeros(n, 8), "age": torch.full((n,), float("nan")),
             "gender": torch.full((n,), -1), "ethnicity": torch.full((n,), -1),
             "identity": torch.full((n,), -1), "teacher": teacher}
    weights = {"emotion": 1.0, "age": 1.0, "gender": 1.0, "ethnicity": 1.0, "identity": 1.0, "teacher": 0.0,
               "teacher_relation": 10.0}
    losses = multitask_loss(outputs, batch, CosFaceHead(8, 2), weights, None)
    expected = teacher_relation_loss(embedding[1:], teacher[1:]).item()
    assert set(losses) == {"teacher_relation", "total"} and expected > 0
    assert abs(losses["teacher_relation"].item() - expected) < 1e-6
    assert abs(losses["total"].item() - 10.0 * expected) < 1e-5
    assert "teacher_relation" not in multitask_loss(outputs, batch, CosFaceHead(8, 2),
                                                    {**weights, "teacher_relation": 0.0}, None)


def test_reference_loss_is_zero_where_the_student_predicts_what_the_reference_did_and_pulls_towards_it():
    from face_mtl.train.losses import REFERENCE_HEADS, multitask_loss, reference_loss

    widths = {"age": 101, "gender": 2, "ethnicity": 5}
    generator = torch.Generator().manual_seed(4)
    reference_logits = {h: torch.randn(6, w, generator=generator) * 2 for h, w in widths.items()}
    targets = torch.cat([reference_logits[h].softmax(dim=1) for h in REFERENCE_HEADS], dim=1)
    # Logits that differ by a constant per row give the same probabilities: no loss.
    shifted = {h: v + torch.arange(6.0)[:, None] for h, v in reference_logits.items()}
    assert reference_loss(shifted, targets, REFERENCE_HEADS).item() < 1e-5

    student = {h: torch.zeros(6, w, requires_grad=True) for h, w in widths.items()}
    first = reference_loss(student, targets, REFERENCE_HEADS)
    # Uniform predictions: the KL divergence of each head is log(classes) minus the target's entropy.
    expected = sum((targets[:, s:s + w] * (targets[:, s:s + w].log() + np.log(w))).sum(dim=1).mean().item()
                   for s, w in zip((0, 101, 103), (101, 2, 5)))
    assert abs(first.item() - expected) < 1e-4 and first.item() > 0.1
    optimizer = torch.optim.SGD(list(student.values()), lr=5.0)
    for _ in range(200):
        optimizer.zero_grad()
        reference_loss(student, targets, REFERENCE_HEADS).backward()
        optimizer.step()
    assert reference_loss(student, targets, REFERENCE_HEADS).item() < 0.05 * first.item()
    with pytest.raises(ValueError, match="108 columns"):
        reference_loss({"age": torch.zeros(6, 50), "gender": torch.zeros(6, 2), "ethnicity": torch.zeros(6, 5)},
                       targets, REFERENCE_HEADS)

    # In the multi-task loss: every face with targets takes part (labelled or not), others none.
    n = 6
    outputs = {"emotion": torch.zeros(n, 8), "embedding": torch.zeros(n, 8),
               **{h: v.detach() for h, v in reference_logits.items()}}
    outputs["age"] = torch.zeros(n, 101)  # age differs from the reference's
    batch_targets = targets.clone()
    batch_targets[0] = 0.0  # a face without targets
    batch = {"emotion": torch.zeros(n, 8), "age": torch.full((n,), float("nan")),
             "gender": torch.full((n,), -1), "ethnicity": torch.full((n,), -1),
             "identity": torch.full((n,), -1), "teacher": torch.zeros(n, 8), "reference": batch_targets}
    weights = {"emotion": 1.0, "age": 1.0, "gender": 1.0, "ethnicity": 1.0, "identity": 1.0, "teacher": 1.0,
               "reference": 3.0}
    from face_mtl.train.losses import CosFaceHead

    losses = multitask_loss(outputs, batch, CosFaceHead(8, 2), weights, None)
    expected = reference_loss({h: outputs[h][1:] for h in REFERENCE_HEADS}, targets[1:], REFERENCE_HEADS).item()
    assert set(losses) == {"reference", "total"} and expected > 0.1
    assert abs(losses["reference"].item() - expected) < 1e-5
    assert abs(losses["total"].item() - 3.0 * expected) < 1e-4
    assert "reference" not in multitask_loss(outputs, batch, CosFaceHead(8, 2), {**weights, "reference": 0.0}, None)
    no_targets = {**batch, "reference": torch.zeros(n, 0)}
    assert "reference" not in multitask_loss(outputs, no_targets, CosFaceHead(8, 2), weights, None)


def test_smiling_loss_is_the_binary_cross_entropy_of_p_happiness():
    from face_mtl.config import EMOTIONS
    from face_mtl.train.losses import smiling_loss

    logits = torch.randn(3, len(EMOTIONS))
    p_happy = logits.softmax(dim=1)[:, EMOTIONS.index("happiness")]
    smiling = torch.tensor([1, 0, 1])
    expected = -(torch.log(p_happy[0]) + torch.log(1 - p_happy[1]) + torch.log(p_happy[2])) / 3
    assert abs(smiling_loss(logits, smiling).item() - expected.item()) < 1e-5


def test_logit_offset_shifts_only_the_expression_loss():
    from face_mtl.train.losses import CosFaceHead, multitask_loss

    n = 2
    outputs = {"emotion": torch.zeros(n, 8), "age": torch.zeros(n, 101), "gender": torch.zeros(n, 2),
               "ethnicity": torch.zeros(n, 5), "embedding": torch.zeros(n, 8)}
    target = torch.zeros(n, 8)
    target[:, 0] = 1.0
    batch = {"emotion": target, "age": torch.full((n,), float("nan")), "gender": torch.full((n,), -1),
             "ethnicity": torch.full((n,), -1), "identity": torch.full((n,), -1), "teacher": torch.zeros(n, 8)}
    weights = {"emotion": 1.0}
    plain = multitask_loss(outputs, batch, CosFaceHead(8, 2), weights, None)["emotion"].item()
    assert abs(plain - math.log(8)) < 1e-5
    # Raising class 0's logit inside the loss (a frequent class's log prior) lowers its loss:
    # the head itself then learns less of a lean towards that class.
    offset = torch.zeros(8)
    offset[0] = 1.0
    shifted = multitask_loss(outputs, batch, CosFaceHead(8, 2), weights, None, offset)["emotion"].item()
    assert abs(shifted - (math.log(7 + math.e) - 1.0)) < 1e-5
