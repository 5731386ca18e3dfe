"""The exported identity head: PCA of backbone features (pure function, synthetic features)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from face_mtl.train.embedding import pca_projection


def _low_rank_features(samples: int, width: int, rank: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(width, rank, generator=generator, dtype=torch.float64))
    # Distinct spreads along each axis, so the principal axes are well defined.
    codes = torch.randn(samples, rank, generator=generator, dtype=torch.float64) * torch.tensor([5.0, 3.0, 1.5])[:rank]
    offset = torch.randn(width, generator=generator, dtype=torch.float64) * 4
    return codes @ basis.T + offset, basis, offset


def test_projection_keeps_the_leading_axes_and_centres():
    features, basis, offset = _low_rank_features(300, 20, 3)
    weight, bias = pca_projection(features, size=5)
    assert weight.shape == (5, 20) and bias.shape == (5,)
    w = weight.double()
    torch.testing.assert_close(w @ w.T, torch.eye(5, dtype=torch.float64), atol=1e-5, rtol=0)
    # The first three rows span the features' subspace; the mean maps to zero.
    torch.testing.assert_close(torch.linalg.det(w[:3] @ basis).abs(), torch.tensor(1.0, dtype=torch.float64), atol=1e-4, rtol=0)
    projected = features.float() @ weight.T + bias
    torch.testing.assert_close(projected.mean(dim=0), torch.zeros(5), atol=1e-3, rtol=0)
    variances = projected.var(dim=0)
    assert variances[0] > variances[1] > variances[2] > 100 * variances[3]
    # Cosine similarity of projections equals that of the centred features (nothing lost).
    centred = features - features.mean(dim=0)
    expected = F.normalize(centred, dim=1) @ F.normalize(centred, dim=1).T
    actual = F.normalize(projected.double(), dim=1) @ F.normalize(projected.double(), dim=1).T
    torch.testing.assert_close(actual, expected, atol=1e-3, rtol=0)


def test_rows_beyond_the_sample_count_are_zero():
    features, _, _ = _low_rank_features(4, 20, 3)
    weight, bias = pca_projection(features, size=8)
    assert float(weight[4:].abs().max()) == 0.0 and float(bias[4:].abs().max()) == 0.0
    assert float(weight[:3].norm(dim=1).min()) > 0.999


def test_lda_keeps_what_tells_people_apart_where_pca_keeps_the_largest_variance():
    from face_mtl.train.embedding import lda_projection

    rng = np.random.default_rng(0)
    people = np.repeat(np.arange(6), 40)
    features = rng.normal(size=(len(people), 10))
    features[:, 0] *= 20.0  # large variance unrelated to the person (lighting, pose)
    features[:, 1] += 4.0 * people  # small differences that identify the person
    features = torch.tensor(features, dtype=torch.float32)

    def nearest_mean_accuracy(weight, bias):
        projected = (features @ weight.T + bias).numpy()
        means = np.stack([projected[people == p].mean(axis=0) for p in range(6)])
        guesses = np.argmin(((projected[:, None] - means[None]) ** 2).sum(axis=2), axis=1)
        return float((guesses == people).mean())

    lda = lda_projection(features, people, size=1)
    pca = pca_projection(features, size=1)
    assert abs(float(lda[0][0, 1])) > 10 * abs(float(lda[0][0, 0]))  # the identifying axis
    assert nearest_mean_accuracy(*lda) > 0.8 > 0.4 > nearest_mean_accuracy(*pca)
    weight, bias = lda_projection(features, people, size=12)  # more rows than features: zeros
    assert weight.shape == (12, 10) and bias.shape == (12,) and not weight[10:].any()
