"""Batched augmentation on cached crops, one affine resample per batch (cheap on 2 cores).

Cached crops hold the tight box inside a margin of CACHE_MARGIN on every side, so in the
cache's normalised coordinates the tight box spans +-1/(1+2*margin). Scale and shift jitter
move the sampling window around that box, as a real detector's boxes wander.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..data.views import TIGHT_EXTENT, crops_to_float, normalise, resample

GRAY_WEIGHTS = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class AugmentSettings:
    scale: float = 0.1  # box size jitter, +- fraction
    # FER+ images frame the whole head loosely, while users' faces come from MTCNN's tight box:
    # expression samples are also zoomed in by up to this fraction, so both framings are learnt.
    zoom_in: float = 0.2
    shift: float = 0.06  # box centre jitter, +- fraction of the box size
    rotate_degrees: float = 8.0
    flip: bool = True
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.4
    grayscale_p: float = 0.2
    # Random erasing (Zhong et al., AAAI 2020): in this share of the samples one rectangle of
    # the view is hidden (set to the mean colour), so that no head leans on one region alone.
    # Off by default; age memorises UTKFace's training faces (MAE 2.1 there, 5.0 held out).
    erase_p: float = 0.0
    erase_area: tuple[float, float] = (0.02, 0.2)  # the rectangle's share of the view
    erase_aspect: float = 3.0  # its height/width ratio, log-uniform in 1/this..this


def random_theta(
    n: int, settings: AugmentSettings, generator: torch.Generator, zoomable: torch.Tensor | None = None
) -> torch.Tensor:
    """Random affine views; ``zoomable`` (N bools) marks the samples that may also be zoomed in."""

    def uniform(spread: float) -> torch.Tensor:
        return (torch.rand(n, generator=generator) * 2 - 1) * spread

    zoom = torch.rand(n, generator=generator) * settings.zoom_in
    if zoomable is not None:
        zoom = zoom * zoomable.float()
    scale = TIGHT_EXTENT * (1 + uniform(settings.scale)) * (1 - zoom)
    angle = uniform(math.radians(settings.rotate_degrees))
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0) if settings.flip else torch.ones(n)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * flip, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin * flip, cos
    theta[:, 0, 2] = uniform(settings.shift * 2 * TIGHT_EXTENT)
    theta[:, 1, 2] = uniform(settings.shift * 2 * TIGHT_EXTENT)
    return theta


def jitter_colour(images: torch.Tensor, settings: AugmentSettings, generator: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, saturation jitter and random grayscale on N x 3 x S x S in 0..1."""
    n = images.shape[0]

    def factor(spread: float) -> torch.Tensor:
        # Drawn on the CPU generator (the same draws on any device), applied where the images are.
        return (1 + (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * spread).to(images.device)

    weights = torch.tensor(GRAY_WEIGHTS, device=images.device).view(1, 3, 1, 1)
    images = images * factor(settings.brightness)
    gray = (images * weights).sum(dim=1, keepdim=True)
    images = (images - gray.mean(dim=(2, 3), keepdim=True)) * factor(settings.contrast) + gray.mean(
        dim=(2, 3), keepdim=True
    )
    gray = (images * weights).sum(dim=1, keepdim=True)
    images = (images - gray) * factor(settings.saturation) + gray
    # FER+ is grayscale while users send colour photos: teach colour-blind features too.
    to_gray = (torch.rand(n, 1, 1, 1, generator=generator) < settings.grayscale_p).to(images.device)
    images = torch.where(to_gray, gray.expand_as(images), images)
    return images.clamp_(0.0, 1.0)


def erase_rectangles(images: torch.Tensor, settings: AugmentSettings, generator: torch.Generator) -> torch.Tensor:
    """Random erasing on N x 3 x S x S normalised views: one rectangle of each chosen sample set
    to 0 (the normalisation's mean colour). Draws nothing when ``erase_p`` is 0, so runs without
    it keep their random streams."""
    if settings.erase_p <= 0:
        return images
    n, _, height, width = images.shape

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + torch.rand(n, generator=generator) * (high - low)

    chosen = torch.rand(n, generator=generator) < settings.erase_p
    area = uniform(*settings.erase_area) * height * width
    aspect = torch.exp(uniform(-1.0, 1.0) * math.log(settings.erase_aspect))
    rect_h = (area * aspect).sqrt().round().clamp(1, height)
    rect_w = (area / aspect).sqrt().round().clamp(1, width)
    top = (uniform(0.0, 1.0) * (height - rect_h + 1)).floor().view(n, 1, 1)
    left = (uniform(0.0, 1.0) * (width - rect_w + 1)).floor().view(n, 1, 1)
    rows = torch.arange(height).view(1, height, 1)
    cols = torch.arange(width).view(1, 1, width)
    hidden = ((rows >= top) & (rows < top + rect_h.view(n, 1, 1)) & (cols >= left)
              & (cols < left + rect_w.view(n, 1, 1)) & chosen.view(n, 1, 1))
    return images.masked_fill(hidden.unsqueeze(1).to(images.device), 0.0)


def augment_batch(crops_uint8, size, mean, std, settings, generator, zoomable=None) -> torch.Tensor:
    """Random training views: N x C x C x 3 uint8 cached crops -> N x 3 x size x size normalised,
    computed where the crops are (the training device: on a GPU the CPU only draws the numbers)."""
    images = crops_to_float(crops_uint8)
    zoomable = zoomable.cpu() if zoomable is not None else None
    theta = random_theta(len(images), settings, generator, zoomable).to(images.device)
    images = resample(images, size, theta)
    return erase_rectangles(normalise(jitter_colour(images, settings, generator), mean, std), settings, generator)

