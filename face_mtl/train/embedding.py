"""The exported identity embedding: a PCA projection of the backbone's features.

The CosFace-trained projection learns the few hundred training people rather than faces in
general: on people never trained on, cosine similarity of the pooled backbone features
verifies better (0.795 against 0.760 with run 3's weights). So at export the embedding head
becomes the leading principal axes of those features over the training people's photos,
which keeps the embedding small and its cosine similarity close to the features'.
"""

from __future__ import annotations

import numpy as np
import torch

from ..config import ModelConfig
from ..evaluate import cached_inputs
from ..model import FaceMTLNet


def pca_projection(features: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight (size x F) and bias (size) mapping features to their ``size`` leading principal
    components (centred, not whitened). Rows beyond the sample count stay zero."""
    features = features.double()
    mean = features.mean(dim=0)
    _, _, axes = torch.linalg.svd(features - mean, full_matrices=False)
    weight = torch.zeros(size, features.shape[1], dtype=torch.float64)
    kept = min(size, axes.shape[0])
    weight[:kept] = axes[:kept]
    return weight.float(), (-weight @ mean).float()


def lda_projection(
    features: torch.Tensor, identities: np.ndarray, size: int, regularisation: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight (size x F) and bias (size) mapping features to their ``size`` leading Fisher
    discriminant axes over ``identities``: the within-person scatter is whitened, then the
    axes along which people's mean features differ most are kept. ``regularisation`` adds
    that multiple of the mean within-person variance to every direction first, so that
    directions seen in few photos are not blown up.

    With run 7's weights (MODEL_CARD.md), 4-fold cross-validation over the CelebA training
    people chose 1.0 among 0.01-3.0 (0.848; 3.0: 0.847), and held-out people then verified
    at 0.816 against 0.792 for the distilled head and 0.790 for PCA
    (``python bench/identity_heads.py``). Not yet used by training's export.
    """
    features = features.double()
    mean = features.mean(dim=0)
    centred = features - mean
    people, index = np.unique(np.asarray(identities), return_inverse=True)
    index = torch.from_numpy(index)
    sums = torch.zeros(len(people), features.shape[1], dtype=torch.float64).index_add_(0, index, centred)
    means = sums / torch.bincount(index, minlength=len(people)).double()[:, None]
    within = centred - means[index]
    within_scatter = within.T @ within / len(features)
    between_scatter = means.T @ means / len(people)
    shrink = regularisation * torch.trace(within_scatter) / within_scatter.shape[0]
    variances, axes = torch.linalg.eigh(within_scatter + shrink * torch.eye(features.shape[1], dtype=torch.float64))
    whiten = axes / variances.sqrt()
    spread, directions = torch.linalg.eigh(whiten.T @ between_scatter @ whiten)
    kept = torch.argsort(spread, descending=True)[: min(size, features.shape[1])]
    weight = torch.zeros(size, features.shape[1], dtype=torch.float64)
    weight[: len(kept)] = (whiten @ directions[:, kept]).T
    return weight.float(), (-weight @ mean).float()


def backbone_features(model: FaceMTLNet, crops: np.ndarray, config: ModelConfig, device: str) -> torch.Tensor:
    """Pooled backbone features of cached margin crops, seen through the tight box (N x F)."""
    model.eval()
    with torch.inference_mode():
        return torch.cat([model.backbone(x).float().cpu() for x in cached_inputs(crops, config, device)])


def fit_identity_projection(model: FaceMTLNet, crops: np.ndarray, device: str) -> None:
    """Replace the model's embedding head, in place, by the PCA projection of its features."""
    config = model.config
    weight, bias = pca_projection(backbone_features(model, crops, config, device), config.embedding_size)
    head = model.heads["embedding"]
    with torch.no_grad():
        head.weight.copy_(weight.to(head.weight))
        head.bias.copy_(bias.to(head.bias))
