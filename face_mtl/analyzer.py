"""``FaceAnalyzer``: the facade users call — detect, crop, run the network, build Faces."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import identity
from .config import RUNTIMES
from .crop import crop_face, resize_crop, to_input_tensor
from .detect import Detector, DetectorSettings, shared_detector
from .images import ImageInput, array_to_rgb, load_image, pil_to_rgb
from .limits import Limits, current_limits
from .model import inference_runner, precision_override, predict
from .types import Comparison, Detection, Face, Match, NoFaceError
from .weights import load_model, resolve_weights

# Faces per network call: small batches keep the activations in the CPU caches (measured on
# 2 cores: 32 faces a call ran predict_crops 45% faster than 256).
BATCH_SIZE = 32


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


@functools.lru_cache(maxsize=4)
def _cached_model(folder: str, device: str, precision: str | None, runtime: str):
    # One model per weights folder, device, precision and runtime per process, however many
    # analyzers exist.
    model, config = load_model(folder, device=device)
    if precision is not None:
        config = config.with_updates(inference_precision=precision)
    # Depthwise-separable backbones run markedly faster in channels-last layout.
    model = model.to(memory_format=torch.channels_last)
    full_batch = BATCH_SIZE * (2 if config.test_time_flip else 1)  # the mirror images ride along
    return model, config, inference_runner(model, config, device, runtime, full_batch)


def _image_name(image: ImageInput, fallback: str) -> str:
    return str(image) if isinstance(image, (str, Path)) else fallback


def _embeddings(faces: Sequence[Face]) -> np.ndarray:
    """len(faces) x D float32 identity embeddings (0 x 0 for no faces)."""
    return np.stack([face.embedding for face in faces]) if faces else np.zeros((0, 0), np.float32)


def _probabilities(labels: Sequence[str], row: np.ndarray) -> dict[str, float]:
    return {label: float(p) for label, p in zip(labels, row)}


class FaceAnalyzer:
    """Detect every face in an image and predict expression, age, gender, ethnicity, identity.

    ``weights``: a weights folder, a model.safetensors path or a Hugging Face Hub repo id
    (default: the weights bundled with the package). ``device``: "cpu" or "cuda" (default:
    cuda when available). Detector options: ``threshold``, ``max_faces``, ``min_face_size``,
    ``max_side`` (see DetectorSettings), or a ready ``detector``. ``test_time_flip``: average
    each face with its mirror image (default: the weights' config.json, True when unset);
    False halves the network's cost. ``inference_precision``: "bf16" or "fp32" (default: the
    weights' config.json, bf16 for the bundled weights; bf16 applies only on CPUs with native
    bfloat16, and runs in torch). ``runtime``: what runs the network on the CPU in fp32: "auto"
    (ONNX Runtime where installed, else torch), "onnx" (which also means fp32 unless
    ``inference_precision`` says otherwise) or "torch"; the figures are the same to 1e-5. ``limits``: input
    limits (default: ``current_limits()``, from the environment); ``max_faces`` defaults to
    ``limits.max_faces``.
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        device: str | None = None,
        *,
        threshold: float | None = None,
        max_faces: int | None = None,
        min_face_size: int | None = None,
        max_side: int | None = None,
        detector: Detector | None = None,
        test_time_flip: bool | None = None,
        inference_precision: str | None = None,
        runtime: str = "auto",
        limits: Limits | None = None,
    ) -> None:
        self.device = device or default_device()
        self.limits = limits or current_limits()
        folder = resolve_weights(weights)
        if inference_precision not in (None, "fp32", "bf16"):
            raise ValueError(f"inference_precision must be fp32 or bf16, not {inference_precision!r}")
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
        self.model, self.config, self._runner = _cached_model(
            str(folder.resolve()), self.device, precision_override(runtime, inference_precision), runtime
        )
        self.test_time_flip = self.config.test_time_flip if test_time_flip is None else bool(test_time_flip)
        overrides = {
            "threshold": threshold,
            "max_faces": self.limits.max_faces if max_faces is None else max_faces,
            "min_face_size": min_face_size,
            "max_side": max_side,
        }
        settings = DetectorSettings(**{k: v for k, v in overrides.items() if v is not None})
        self.max_faces = settings.max_faces  # faces per image, the largest kept
        self.detector = detector or shared_detector(settings, self.device)

    def detect(self, image: ImageInput) -> list[Detection]:
        """Faces found in the image, largest first, without running the attribute network."""
        return self.detector.detect(load_image(image, self.limits))

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Faces found in each of many HxWx3 uint8 RGB arrays, largest first, in the order of
        ``images``. Arrays of the same size share one detector call (the detector batches
        only same-size inputs)."""
        by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for index, image in enumerate(images):
            by_shape[image.shape].append(index)
        detections: list[list[Detection]] = [[] for _ in images]
        for indices in by_shape.values():
            for i, found in zip(indices, self.detector.detect_batch([images[i] for i in indices])):
                detections[i] = found
        return detections

    def analyze(self, image: ImageInput) -> list[Face]:
        """All faces of a path, PIL image or HxWx3 uint8 RGB array, largest first (at most
        ``max_faces``). Raises ImageLoadError or LimitExceededError (both FaceMTLInputError)
        for input it cannot or will not read."""
        rgb = load_image(image, self.limits)
        return self.analyze_detections(rgb, self.detector.detect(rgb))

    def analyze_batch(
        self, images: Sequence[np.ndarray], detections: Sequence[Sequence[Detection]] | None = None
    ) -> list[list[Face]]:
        """Faces of many HxWx3 uint8 RGB arrays (decoded and checked already, e.g. by
        ``load_image``), one list per image in the order of ``images``, each as ``analyze``
        gives it: largest first, the same tight crops. Detection runs over same-size groups
        (``detect_batch``) unless ``detections`` (one list per image) are given; the faces of
        all images then go through the network together.
        """
        if detections is None:
            detections = self.detect_batch(images)
        size = self.config.input_size
        crops = [crop_face(image, d.box, size) for image, found in zip(images, detections) for d in found]
        predictions = self._predict_arrays(crops)
        rows = iter(range(len(crops)))  # the crops' rows, image after image
        return [
            [self._face(predictions, next(rows), d.box, d.score, d.landmarks) for d in found]
            for found in detections
        ]

    def analyze_detections(self, rgb: np.ndarray, detections: Sequence[Detection]) -> list[Face]:
        """Run the network on given detections of an RGB array (tight crops, one batch)."""
        return self.analyze_batch([rgb], [detections])[0]

    def predict_crops(self, crops: Sequence[np.ndarray | Image.Image]) -> list[Face]:
        """Faces for already-cropped images (arrays of any size, gray or RGB, or PIL images).

        Returned Faces have box, score and landmarks None, in the order of ``crops``.
        """
        size = self.config.input_size
        arrays = [
            resize_crop(
                np.asarray(pil_to_rgb(c)) if isinstance(c, Image.Image) else array_to_rgb(c, f"crop {i}"),
                size,
            )
            for i, c in enumerate(crops)
        ]
        predictions = self._predict_arrays(arrays)
        return [self._face(predictions, i, None, None, None) for i in range(len(arrays))]

    @property
    def verdict_threshold(self) -> tuple[float, str]:
        """(threshold, source): the weights' calibrated same-person threshold and "calibrated",
        or identity.DEFAULT_THRESHOLD and "default" when config.json has no calibration."""
        return identity.verdict_threshold(self.config.verification)

    def compare(self, image_a: ImageInput, image_b: ImageInput) -> Comparison:
        """Are the largest faces of two images (paths, PIL images or RGB arrays) the same person?

        The verdict is cosine similarity >= the calibrated threshold; the Comparison also holds
        every face of each image and the face-by-face similarity matrix. Raises ImageLoadError
        for unreadable images and NoFaceError, naming the image, when one has no face.
        """
        threshold, source = self.verdict_threshold
        # Both are read before any detection, so an unreadable second image fails fast.
        named = [(load_image(image_a), image_a, "image A"), (load_image(image_b), image_b, "image B")]
        faces = []
        for rgb, image, name in named:
            found = self.analyze(rgb)
            if not found:
                raise NoFaceError(_image_name(image, name))
            faces.append(found)
        faces_a, faces_b = faces
        matrix = identity.similarity_matrix(_embeddings(faces_a), _embeddings(faces_b))
        similarity = float(matrix[0, 0])  # faces are largest first
        return Comparison(
            similarity=similarity,
            same_person=bool(similarity >= threshold),
            threshold=threshold,
            threshold_source=source,
            matrix=matrix,
            faces_a=tuple(faces_a),
            faces_b=tuple(faces_b),
        )

    def find(self, query_image: ImageInput, images: Sequence[ImageInput]) -> list[Match]:
        """Every face in ``images`` ranked by similarity to the largest face of ``query_image``,
        best first, each with its same-person verdict at the calibrated threshold.

        Raises NoFaceError when the query has no face, ImageLoadError for unreadable images.
        """
        threshold, _ = self.verdict_threshold
        query = self.analyze(query_image)
        if not query:
            raise NoFaceError(_image_name(query_image, "query image"))
        found = [(index, face_index, face) for index, image in enumerate(images)
                 for face_index, face in enumerate(self.analyze(image))]
        order, similarities = identity.rank(query[0].embedding, _embeddings([face for _, _, face in found]))
        matches = []
        for position, similarity in zip(order, similarities):
            index, face_index, face = found[position]
            source = images[index]
            matches.append(Match(
                image=index,
                path=str(source) if isinstance(source, (str, Path)) else None,
                face=face_index,
                box=face.box,
                similarity=float(similarity),
                same_person=bool(similarity >= threshold),
                threshold=threshold,
            ))
        return matches

    def _predict_arrays(self, crops: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Network outputs for SxSx3 uint8 crops, as numpy arrays with one row per crop."""
        parts: list[dict[str, torch.Tensor]] = []
        with torch.inference_mode():
            for start in range(0, len(crops), BATCH_SIZE):
                batch = to_input_tensor(crops[start : start + BATCH_SIZE], self.config.mean, self.config.std)
                batch = batch.to(self.device).contiguous(memory_format=torch.channels_last)
                parts.append(predict(self._runner, batch, flip=self.test_time_flip))
        if not parts:
            return {}
        return {key: torch.cat([p[key] for p in parts]).cpu().numpy() for key in parts[0]}

    def _face(self, predictions, index, box, score, landmarks) -> Face:
        config = self.config
        emotions = _probabilities(config.emotions, predictions["emotion"][index])
        genders = _probabilities(config.genders, predictions["gender"][index])
        ethnicities = _probabilities(config.ethnicities, predictions["ethnicity"][index])
        return Face(
            box=box,
            score=score,
            landmarks=landmarks,
            emotion=max(emotions, key=emotions.get),
            emotions=emotions,
            age=float(predictions["age"][index]),
            gender=max(genders, key=genders.get),
            genders=genders,
            ethnicity=max(ethnicities, key=ethnicities.get),
            ethnicities=ethnicities,
            embedding=predictions["embedding"][index].astype(np.float32),
        )
