"""Face detection behind a small protocol; MTCNN (facenet-pytorch's nets, run batched by
``mtcnn.detect_faces``) is the default detector."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image

from .mtcnn import MTCNNNets, detect_faces
from .types import Detection

# MTCNN gives boxes on clothing and background at about 0.7; real faces score above 0.95.
DEFAULT_THRESHOLD = 0.9
DEFAULT_MAX_FACES = 50
DEFAULT_MIN_FACE_SIZE = 20
# Larger photos are downscaled for detection only (boxes map back to original pixels):
# MTCNN's image pyramid costs grow with the pixel count.
DEFAULT_MAX_SIDE = 800


class Detector(Protocol):
    def detect(self, image: np.ndarray) -> list[Detection]: ...

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]: ...


@dataclass(frozen=True)
class DetectorSettings:
    """``min_face_size`` is in pixels of the original image; faces beyond ``max_faces`` (the
    smallest ones) are dropped; ``max_side`` caps the longer side of the detector's input."""

    threshold: float = DEFAULT_THRESHOLD
    max_faces: int = DEFAULT_MAX_FACES
    min_face_size: int = DEFAULT_MIN_FACE_SIZE
    max_side: int = DEFAULT_MAX_SIDE

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in 0..1, got {self.threshold}")
        if self.max_faces < 1:
            raise ValueError(f"max_faces must be at least 1, got {self.max_faces}")
        if self.min_face_size < 1 or self.max_side < 32:
            raise ValueError("min_face_size must be >= 1 and max_side >= 32")


def select_detections(
    boxes: np.ndarray,
    scores: np.ndarray,
    landmarks: np.ndarray,
    image_size: tuple[int, int],
    scale: tuple[float, float],
    settings: DetectorSettings,
) -> list[Detection]:
    """Map raw detector output (in detector pixels) to filtered, largest-first Detections.

    ``image_size`` is (width, height) of the original image; ``scale`` is (x, y) detector
    pixels per original pixel. Boxes are clipped to the image.
    """
    width, height = image_size
    sx, sy = scale
    found = []
    for box, score, points in zip(boxes, scores, landmarks):
        if not np.isfinite(score) or score < settings.threshold:
            continue
        x1, y1, x2, y2 = float(box[0]) / sx, float(box[1]) / sy, float(box[2]) / sx, float(box[3]) / sy
        x1, y1 = max(0.0, x1), max(0.0, y1)
        x2, y2 = min(float(width), x2), min(float(height), y2)
        if min(x2 - x1, y2 - y1) < settings.min_face_size:
            continue
        points = tuple((float(x) / sx, float(y) / sy) for x, y in points)
        found.append(Detection(box=(x1, y1, x2, y2), score=float(score), landmarks=points))
    found.sort(key=lambda d: d.area, reverse=True)
    return found[: settings.max_faces]


class MTCNNDetector:
    """MTCNN with the project's defaults; thread-safe (no state changes per call)."""

    def __init__(self, settings: DetectorSettings | None = None, device: str = "cpu") -> None:
        self.settings = settings or DetectorSettings()
        nets = MTCNNNets().to(device)
        self._nets = nets.trace_for_cpu() if device == "cpu" else nets
        self.device = device

    def _scale_for(self, image: np.ndarray) -> float:
        return min(1.0, self.settings.max_side / max(image.shape[:2]))

    def _prepare(self, image: np.ndarray, scale: float) -> np.ndarray:
        if scale >= 1.0:
            return image
        height, width = image.shape[:2]
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        return np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Detect faces in HxWx3 uint8 RGB images that all have the same size (video frames)."""
        if not images:
            return []
        scale = self._scale_for(images[0])
        prepared = np.stack([self._prepare(image, scale) for image in images])
        # MTCNN's smallest face is in detector pixels; never below its 12-pixel P-Net window.
        smallest = max(12, round(self.settings.min_face_size * scale))
        if min(prepared.shape[1:3]) < smallest:
            # No face fits (a sliver, or a thumbnail): MTCNN would fail on an empty image pyramid.
            return [[] for _ in images]
        raw = detect_faces(prepared, self._nets, smallest, device=self.device)
        height, width = images[0].shape[:2]
        # The exact per-axis ratio after rounding the resized size.
        axis_scale = (prepared.shape[2] / width, prepared.shape[1] / height)
        return [
            select_detections(found.boxes, found.scores, found.landmarks, (width, height), axis_scale, self.settings)
            for found in raw
        ]

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Detect faces in one HxWx3 uint8 RGB image, largest first."""
        return self.detect_batch([image])[0]


@functools.lru_cache(maxsize=4)
def shared_detector(settings: DetectorSettings, device: str = "cpu") -> MTCNNDetector:
    """One MTCNNDetector per settings and device per process: building one loads and traces its
    three nets, and it keeps no state between calls, so every caller can share it."""
    return MTCNNDetector(settings, device=device)
