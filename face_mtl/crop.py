"""Tight face crops and network input tensors, shared by inference and training.

The paper crops the detector's box with no margin and resizes it to the network's square
input (aspect ratio is not kept). Training caches crops with a margin so that augmentation
can jitter scale and shift around the same tight box.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from .types import Box


def crop_face(image: np.ndarray, box: Box, size: int, margin: float = 0.0) -> np.ndarray:
    """Cut ``box`` (x1, y1, x2, y2 pixels) out of an HxWxC uint8 image and resize it.

    ``margin`` widens the box by that fraction of its width/height on every side (0 = tight,
    the inference crop). The result is square, ``round(size * (1 + 2 * margin))`` pixels per
    side; parts of the box outside the image repeat the edge pixels.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    width, height = x2 - x1, y2 - y1
    if width <= 0 or height <= 0:
        raise ValueError(f"empty box {box}")
    x1, x2 = x1 - margin * width, x2 + margin * width
    y1, y2 = y1 - margin * height, y2 + margin * height
    out = round(size * (1 + 2 * margin))
    rows, cols = image.shape[:2]
    pad_left = max(0, -math.floor(x1)) + 1
    pad_top = max(0, -math.floor(y1)) + 1
    pad_right = max(0, math.ceil(x2) - cols) + 1
    pad_bottom = max(0, math.ceil(y2) - rows) + 1
    left, top = max(0, math.floor(x1)), max(0, math.floor(y1))
    right, bottom = min(cols, math.ceil(x2)), min(rows, math.ceil(y2))
    region = image[top:bottom, left:right]
    if region.size == 0:
        raise ValueError(f"box {box} lies outside the {cols}x{rows} image")
    pads = ((pad_top, pad_bottom), (pad_left, pad_right)) + ((0, 0),) * (image.ndim - 2)
    region = np.pad(region, pads, mode="edge")
    # Box coordinates relative to the padded region (sub-pixel exact through PIL's box).
    ox, oy = left - pad_left, top - pad_top
    resized = Image.fromarray(region).resize(
        (out, out), Image.BILINEAR, box=(x1 - ox, y1 - oy, x2 - ox, y2 - oy)
    )
    return np.asarray(resized)


def resize_crop(crop: np.ndarray, size: int) -> np.ndarray:
    """Resize an already tight HxWx3 uint8 crop to size x size."""
    if crop.shape[0] == size and crop.shape[1] == size:
        return crop
    return np.asarray(Image.fromarray(crop).resize((size, size), Image.BILINEAR))


def to_input_tensor(
    crops: Sequence[np.ndarray], mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """Stack NxSxSx3 uint8 RGB crops into a float32 Nx3xSxS tensor, normalised by mean/std."""
    batch = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div_(255.0)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return batch.sub_(mean_t).div_(std_t)
