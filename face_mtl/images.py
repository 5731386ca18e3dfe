"""Reading user images into one canonical form: HxWx3 uint8 RGB numpy arrays."""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ImageInput = Union[str, Path, Image.Image, np.ndarray]


class ImageLoadError(ValueError):
    """An input that is not a readable image; the message names the input and the problem."""


def _sixteen_bit_to_8(image: Image.Image) -> Image.Image:
    array = np.asarray(image)
    if array.dtype.kind == "f":
        top = float(array.max()) or 1.0
        return Image.fromarray(np.clip(array / top * 255.0, 0, 255).astype(np.uint8))
    top = 65535 if array.max() > 255 else 255
    return Image.fromarray((array.astype(np.float64) * 255.0 / top).round().astype(np.uint8))


def pil_to_rgb(image: Image.Image) -> Image.Image:
    """Apply EXIF orientation and convert any PIL mode (L, LA, P, RGBA, CMYK, I;16...) to RGB."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        image = _sixteen_bit_to_8(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels become white, as viewers show them, rather than black.
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


def array_to_rgb(array: np.ndarray, name: str = "array") -> np.ndarray:
    """Accept HxW, HxWx1, HxWx3 or HxWx4 arrays (uint8, or floats in 0..1) and return HxWx3 uint8."""
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or 0 in array.shape:
        raise ImageLoadError(f"{name}: expected an HxW or HxWx3 image array, got shape {array.shape}")
    if array.dtype != np.uint8:
        if array.dtype.kind == "f":
            array = np.clip(array * 255.0 if array.max() <= 1.0 else array, 0, 255)
        elif array.dtype.kind in "iu" and array.max() > 255:
            array = array.astype(np.float64) * 255.0 / 65535.0
        array = np.asarray(array).round().astype(np.uint8)
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    if array.shape[2] == 4:
        # Same as PIL inputs: transparent pixels become white.
        return np.asarray(pil_to_rgb(Image.fromarray(array, "RGBA")))
    return np.ascontiguousarray(array)


def load_image(image: ImageInput) -> np.ndarray:
    """Read a path, PIL image or array as an HxWx3 uint8 RGB array (EXIF orientation applied).

    Raises ImageLoadError, naming the file, for missing, empty, corrupt or non-image files.
    """
    if isinstance(image, np.ndarray):
        return array_to_rgb(image)
    if isinstance(image, Image.Image):
        return np.asarray(pil_to_rgb(image))
    if not isinstance(image, (str, Path)):
        raise ImageLoadError(f"unsupported image input of type {type(image).__name__}")
    path = Path(image)
    if not path.exists():
        raise ImageLoadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageLoadError(f"{path}: is a directory, not an image")
    if path.stat().st_size == 0:
        raise ImageLoadError(f"{path}: empty file")
    return _decode(path, str(path))


def decode_image(data: bytes, name: str) -> np.ndarray:
    """Decode an encoded image file's bytes (JPEG, PNG, ...) as load_image reads the file.

    ``name`` (usually the file's path) starts every ImageLoadError message, so errors read
    the same as load_image's for the same file.
    """
    if len(data) == 0:
        raise ImageLoadError(f"{name}: empty file")
    return _decode(io.BytesIO(data), name)


def _decode(source: Path | io.BytesIO, name: str) -> np.ndarray:
    try:
        with Image.open(source) as opened:
            opened.load()
            return np.asarray(pil_to_rgb(opened))
    except UnidentifiedImageError:
        raise ImageLoadError(f"{name}: not an image (unrecognised format)") from None
    except Image.DecompressionBombError as error:
        raise ImageLoadError(f"{name}: image too large ({error})") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError) as error:
        raise ImageLoadError(f"{name}: corrupt or truncated image ({error})") from None
