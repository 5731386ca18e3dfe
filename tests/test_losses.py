"""Training losses against hand-computed values."""

import math

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
