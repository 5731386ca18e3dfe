"""The cached crops' geometry: each holds the tight (inference) box inside a margin of
CACHE_MARGIN on every side, so in normalised coordinates the tight box spans +-TIGHT_EXTENT.
Evaluation samples exactly that box (``eval_batch``); training augmentation moves the sampling
window around it (train/augment.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .sets import CACHE_MARGIN

TIGHT_EXTENT = 1.0 / (1.0 + 2.0 * CACHE_MARGIN)


def crops_to_float(crops_uint8: torch.Tensor) -> torch.Tensor:
    """N x C x C x 3 uint8 -> N x 3 x C x C float in 0..1."""
    return crops_uint8.permute(0, 3, 1, 2).float().div_(255.0)


def resample(images: torch.Tensor, size: int, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta, [images.shape[0], 3, size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def center_theta(n: int) -> torch.Tensor:
    """Affine parameters that sample exactly the tight box (evaluation)."""
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = TIGHT_EXTENT
    theta[:, 1, 1] = TIGHT_EXTENT
    return theta


def normalise(images: torch.Tensor, mean, std) -> torch.Tensor:
    mean, std = (torch.tensor(v, device=images.device).view(1, 3, 1, 1) for v in (mean, std))
    return (images - mean) / std


def eval_batch(crops_uint8, size, mean, std) -> torch.Tensor:
    """The tight box of each cached crop, normalised: the inference view."""
    images = crops_to_float(crops_uint8)
    return normalise(resample(images, size, center_theta(len(images))), mean, std)

