"""The exported identity head: PCA of backbone features (pure function, synthetic features)."""

from __future__ import annotations

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
