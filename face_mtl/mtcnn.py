"""MTCNN's three stages (Zhang et al., 2016) over a batch of same-size images, with the P-Net,
R-Net and O-Net that facenet-pytorch trained and ships.

facenet-pytorch's ``detect_face`` resamples every candidate box with its own ``interpolate``
call (tens per photo, thousands per batch) and runs the last NMS in NumPy; profiled on 200 px
photos, those calls were most of the detector's time. Here each stage is a few tensor
operations for the whole batch: the candidates of R-Net and O-Net are cut out and
area-resampled in one gather from a summed-area table. The arithmetic is facenet-pytorch's
(the same area resampling, thresholds, box regressions and NMS), so the boxes are the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import batched_nms

# facenet-pytorch's defaults, which its nets were trained and tuned with.
STAGE_THRESHOLDS = (0.6, 0.7, 0.7)
PYRAMID_FACTOR = 0.709
PNET_STRIDE, PNET_CELL = 2, 12
# Candidate crops per R-Net / O-Net call: small enough that the activations stay in the CPU's
# caches (measured: 64 ran R-Net about 3x and O-Net 5x faster than 512).
NET_BATCH = 64


@dataclass(frozen=True)
class RawFaces:
    """One image's detections in detector pixels: boxes N x 4 (x1, y1, x2, y2), scores N,
    landmarks N x 5 x 2 (eyes, nose, mouth corners)."""

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray


class MTCNNNets(torch.nn.Module):
    """facenet-pytorch's trained P-Net, R-Net and O-Net (weights inside its wheel)."""

    def __init__(self) -> None:
        super().__init__()
        from facenet_pytorch.models.mtcnn import ONet, PNet, RNet

        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        # Channels-last runs these nets' small convolutions and 3x3 max-pools several times
        # faster on the CPU than the default layout.
        self.eval().to(memory_format=torch.channels_last)

    def trace_for_cpu(self) -> "MTCNNNets":
        """Replace the three nets by traced, frozen copies (oneDNN kernels): 10 % faster
        detection on 200 px photos, boxes equal to 1e-4 px. A net that fails to trace stays
        as it is. Returns self."""
        import warnings

        for name, side in (("pnet", 50), ("rnet", 24), ("onet", 48)):
            example = torch.zeros(2, 3, side, side).contiguous(memory_format=torch.channels_last)
            try:
                with torch.no_grad(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    traced = torch.jit.trace(getattr(self, name), example)
                    setattr(self, name, torch.jit.optimize_for_inference(torch.jit.freeze(traced)))
            except Exception:  # an optimisation only: never a reason to fail
                continue
        return self


def pyramid_scales(height: int, width: int, min_face_size: float, factor: float = PYRAMID_FACTOR) -> list[float]:
    """Image scales at which P-Net's 12-pixel window sees faces from ``min_face_size`` up."""
    scale = 12.0 / min_face_size
    side = min(height, width) * scale
    scales = []
    while side >= 12:
        scales.append(scale)
        scale *= factor
        side *= factor
    return scales


def summed_area_table(images: torch.Tensor) -> torch.Tensor:
    """B x (H+1) x (W+1) x 3 table of B x H x W x 3 uint8 images: entry (y, x) is the sum of
    the pixels above and left of it, so any rectangle's sum is four look-ups. Every sum is
    exact: float32 (the fastest cumulative sum here) while sums stay below 2**24, int32 below
    2**31, float64 beyond."""
    largest = 255 * images.shape[1] * images.shape[2]
    dtype = torch.float32 if largest < 2**24 else torch.int32 if largest < 2**31 else torch.float64
    table = images.to(dtype).cumsum(dim=1, dtype=dtype).cumsum(dim=2, dtype=dtype)
    return F.pad(table, (0, 0, 1, 0, 1, 0))


def _bin_edges(start: torch.Tensor, length: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """K x size first and one-past-last source index of each output bin, as area resampling
    (``adaptive_avg_pool2d``) takes them: floor(i L / size) .. ceil((i + 1) L / size)."""
    i = torch.arange(size, dtype=torch.int64, device=start.device)
    length = length.to(torch.int64)[:, None]
    first = (i * length) // size
    last = -((-(i + 1) * length) // size)
    return start.to(torch.int64)[:, None] + first, start.to(torch.int64)[:, None] + last


def area_crops(
    table: torch.Tensor, image_index: torch.Tensor, top: torch.Tensor, bottom: torch.Tensor,
    left: torch.Tensor, right: torch.Tensor, size: int,
) -> torch.Tensor:
    """K x 3 x size x size float32 crops (channels-last memory), rows top..bottom-1 and columns
    left..right-1 of image ``image_index[k]``, resampled by area averaging (as
    ``F.interpolate(mode="area")``). ``table``: the images' ``summed_area_table``."""
    row0, row1 = _bin_edges(top, bottom - top, size)
    col0, col1 = _bin_edges(left, right - left, size)
    rows, cols = torch.cat([row0, row1], dim=1), torch.cat([col0, col1], dim=1)  # K x 2size
    _, height1, width1, channels = table.shape
    # Flat pixel offsets of every corner, read with one index_select of whole pixels (all
    # channels at once): several times faster than multi-dimensional indexing, and 1.5-1.8x
    # faster than indexing every channel value.
    row_start = (image_index.to(torch.int64)[:, None] * height1 + rows) * width1
    flat = row_start[:, :, None] + cols[:, None, :]
    corners = table.reshape(-1, channels).index_select(0, flat.reshape(-1)).view(len(rows), 2 * size, 2 * size, channels)
    sums = (corners[:, size:, size:] - corners[:, :size, size:]) - (corners[:, size:, :size] - corners[:, :size, :size])
    area = ((row1 - row0)[:, :, None] * (col1 - col0)[:, None, :]).unsqueeze(-1)
    # Means in float64 only when the table needed it; int32 sums divide in float32.
    dtype = torch.float64 if sums.dtype == torch.float64 else torch.float32
    return (sums.to(dtype) / area.to(dtype)).to(torch.float32).permute(0, 3, 1, 2)


def _normalise(pixels: torch.Tensor) -> torch.Tensor:
    return ((pixels - 127.5) * 0.0078125).contiguous(memory_format=torch.channels_last)


def _run_in_batches(net: torch.nn.Module, crops: torch.Tensor) -> tuple[torch.Tensor, ...]:
    # One call even for no crops, so the outputs keep their shapes.
    parts = [net(crops[i : i + NET_BATCH]) for i in range(0, max(1, len(crops)), NET_BATCH)]
    return tuple(torch.cat(outputs) for outputs in zip(*parts))


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Boxes grown to squares about their centres (MTCNN's ``rerec``)."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    x1 = boxes[:, 0] + w * 0.5 - side * 0.5
    y1 = boxes[:, 1] + h * 0.5 - side * 0.5
    return torch.stack([x1, y1, x1 + side, y1 + side], dim=1)


def _regress(boxes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Boxes moved by the net's regression, in units of box size (MTCNN's ``bbreg``)."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    return boxes + offsets * torch.stack([w, h, w, h], dim=1)


def _crop_window(boxes: torch.Tensor, width: int, height: int) -> tuple[torch.Tensor, ...]:
    """Integer pixel window of each box, clipped to the image (MTCNN's ``pad``): top, bottom,
    left, right, with bottom and right one past the last row and column."""
    box = boxes.trunc().to(torch.int64)
    left, top = box[:, 0].clamp(min=1) - 1, box[:, 1].clamp(min=1) - 1
    right, bottom = box[:, 2].clamp(max=width), box[:, 3].clamp(max=height)
    return top, bottom, left, right


def _candidate_crops(table, boxes, image_index, width, height, size) -> tuple[torch.Tensor, torch.Tensor]:
    """(crops of the boxes with a non-empty window, mask of those boxes)."""
    top, bottom, left, right = _crop_window(boxes, width, height)
    valid = (bottom > top) & (right > left)
    crops = area_crops(table, image_index[valid], top[valid], bottom[valid], left[valid], right[valid], size)
    return _normalise(crops), valid


def nms_min(boxes: np.ndarray, scores: np.ndarray, image_index: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy NMS within each image, overlap = intersection over the smaller box (O-Net's
    "Min" rule); indices kept, best first."""
    # Best first; equal scores (O-Net saturates at 1.0) in the order facenet-pytorch's NumPy
    # NMS takes them, so the same box wins.
    order = np.argsort(scores)[::-1]
    boxes, image_index = boxes[order], image_index[order]
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    w = np.maximum(0.0, np.minimum(boxes[:, None, 2], boxes[None, :, 2]) - np.maximum(boxes[:, None, 0], boxes[None, :, 0]) + 1)
    h = np.maximum(0.0, np.minimum(boxes[:, None, 3], boxes[None, :, 3]) - np.maximum(boxes[:, None, 1], boxes[None, :, 1]) + 1)
    overlap = w * h / np.minimum(area[:, None], area[None, :])
    suppress = (overlap > threshold) & (image_index[:, None] == image_index[None, :])
    alive = np.ones(len(boxes), bool)
    keep = []
    for i in range(len(boxes)):
        if alive[i]:
            keep.append(i)
            alive &= ~suppress[i]
    return order[np.array(keep, np.int64)]


def _proposals(pixels: torch.Tensor, nets: MTCNNNets, scales: list[float], threshold: float):
    """Stage 1: P-Net over the image pyramid -> candidate boxes (K x 4), scores, image index."""
    height, width = pixels.shape[2:]
    boxes, scores, offsets, image_index = [], [], [], []
    for scale in scales:
        resized = F.interpolate(pixels, size=(int(height * scale + 1), int(width * scale + 1)), mode="area")
        regression, probabilities = nets.pnet(_normalise(resized))
        found = (probabilities[:, 1] >= threshold).nonzero()
        b, y, x = found[:, 0], found[:, 1], found[:, 2]
        cell = torch.stack([x, y], dim=1).to(pixels.dtype)
        corner1 = ((PNET_STRIDE * cell + 1) / scale).floor()
        corner2 = ((PNET_STRIDE * cell + PNET_CELL) / scale).floor()
        here = torch.cat([corner1, corner2], dim=1)
        score = probabilities[b, 1, y, x]
        keep = batched_nms(here, score, b, 0.5)  # within each scale and image
        boxes.append(here[keep])
        scores.append(score[keep])
        offsets.append(regression[b, :, y, x][keep])
        image_index.append(b[keep])
    boxes, scores, offsets, image_index = (torch.cat(v) for v in (boxes, scores, offsets, image_index))
    keep = batched_nms(boxes, scores, image_index, 0.7)  # across scales, within each image
    boxes, scores, offsets, image_index = boxes[keep], scores[keep], offsets[keep], image_index[keep]
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    # P-Net's regression is in units of the box size without MTCNN's +1 (facenet-pytorch).
    boxes = boxes + offsets * torch.stack([w, h, w, h], dim=1)
    return _square(boxes), scores, image_index


@torch.inference_mode()
def detect_faces(
    images: np.ndarray, nets: MTCNNNets, min_face_size: float,
    thresholds: tuple[float, float, float] = STAGE_THRESHOLDS, device: str = "cpu",
) -> list[RawFaces]:
    """Faces of each image of a B x H x W x 3 uint8 RGB batch, in detector pixels, found
    with ``nets`` on ``device``."""
    batch, height, width = images.shape[:3]
    empty = RawFaces(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))
    scales = pyramid_scales(height, width, min_face_size)
    if not scales:
        return [empty] * batch
    pixels = torch.from_numpy(np.ascontiguousarray(images)).to(device)  # B x H x W x 3 uint8
    # Planar (NCHW) pixels: the pyramid's area resampling ran 1.5x faster than on channels-last.
    planar = pixels.permute(0, 3, 1, 2).contiguous().to(torch.float32)
    boxes, scores, image_index = _proposals(planar, nets, scales, thresholds[0])
    table = summed_area_table(pixels)

    # Stage 2: R-Net rescores and regresses every candidate at 24 x 24.
    if len(boxes):
        crops, valid = _candidate_crops(table, boxes, image_index, width, height, 24)
        boxes, image_index = boxes[valid], image_index[valid]
        offsets, probabilities = _run_in_batches(nets.rnet, crops)
        keep = probabilities[:, 1] > thresholds[1]
        boxes, scores, image_index, offsets = boxes[keep], probabilities[keep, 1], image_index[keep], offsets[keep]
        keep = batched_nms(boxes, scores, image_index, 0.7)
        boxes = _square(_regress(boxes[keep], offsets[keep]))
        scores, image_index = scores[keep], image_index[keep]

    # Stage 3: O-Net at 48 x 48 gives the final score, box and five landmarks.
    landmarks = torch.zeros(0, 5, 2, device=device)
    if len(boxes):
        crops, valid = _candidate_crops(table, boxes, image_index, width, height, 48)
        boxes, image_index = boxes[valid], image_index[valid]
        offsets, points, probabilities = _run_in_batches(nets.onet, crops)
        keep = probabilities[:, 1] > thresholds[2]
        boxes, scores, image_index = boxes[keep], probabilities[keep, 1], image_index[keep]
        offsets, points = offsets[keep], points[keep]
        w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        landmarks = torch.stack([w * points[:, :5] + boxes[:, :1] - 1, h * points[:, 5:] + boxes[:, 1:2] - 1], dim=2)
        boxes = _regress(boxes, offsets)

    boxes, scores, landmarks = boxes.cpu().numpy(), scores.cpu().numpy(), landmarks.cpu().numpy()
    image_index = image_index.cpu().numpy()
    keep = nms_min(boxes, scores, image_index, 0.7) if len(boxes) else np.zeros(0, np.int64)
    results = []
    for b in range(batch):
        mine = keep[image_index[keep] == b]
        results.append(RawFaces(boxes[mine].astype(np.float32), scores[mine].astype(np.float32),
                                landmarks[mine].astype(np.float32)))
    return results
