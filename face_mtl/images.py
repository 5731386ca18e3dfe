"""Reading user images into one canonical form: HxWx3 uint8 RGB numpy arrays."""

from __future__ import annotations

import re
import struct
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import FaceMTLInputError, ImageLoadError, LimitExceededError
from .formats import describe_content, is_still_image, pillow_formats, read_head
from .limits import Limits, check_file_size, check_photo_size, current_limits

ImageInput = Union[str, Path, Image.Image, np.ndarray]

__all__ = ["ImageInput", "ImageLoadError", "array_to_rgb", "load_image", "pil_to_rgb"]


def _sixteen_bit_to_8(image: Image.Image) -> Image.Image:
    array = np.asarray(image)
    if array.dtype.kind == "f":
        top = float(array.max()) or 1.0
        return Image.fromarray(np.clip(array / top * 255.0, 0, 255).astype(np.uint8))
    top = 65535 if array.max() > 255 else 255
    return Image.fromarray((array.astype(np.float64) * 255.0 / top).round().astype(np.uint8))


def pil_to_rgb(image: Image.Image) -> Image.Image:
    """Apply EXIF orientation and convert any PIL mode (L, LA, P, RGBA, CMYK, I;16...) to RGB."""
    try:
        image = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, IndexError, struct.error, ZeroDivisionError):
        pass  # unreadable EXIF: the pixels as stored are still the photo
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
        raise ImageLoadError(name, f"expected an HxW or HxWx3 image array, got shape {array.shape}")
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


def _decompression_bomb(source: Path, error: Exception, limits: Limits) -> LimitExceededError:
    # Pillow refuses images over twice Image.MAX_IMAGE_PIXELS at open, before we see the size.
    found = re.search(r"\((\d+) pixels\)", str(error))
    size = f"{int(found.group(1)) / 1e6:.0f} megapixels" if found else "far too many pixels"
    return LimitExceededError(
        source, f"the photo has {size}, more than the {limits.max_pixels / 1e6:g} megapixel limit; resize it first"
    )


def _unreadable(path: Path) -> ImageLoadError:
    try:
        kind = describe_content(read_head(path))
    except OSError:
        kind = None
    if kind is None:
        return ImageLoadError(path, "not an image (unrecognised format); use a JPEG, PNG or WebP photo")
    if is_still_image(kind):
        return ImageLoadError(path, f"not an image that can be read: {kind} that is corrupt or incomplete")
    if "HEIC" in kind or "AVIF" in kind:
        return ImageLoadError(path, f"not an image that can be read here: {kind}; save it as JPEG or PNG")
    if "video" in kind:
        return ImageLoadError(path, f"not an image: {kind}; analyse it as a clip")
    return ImageLoadError(path, f"not an image: {kind}; use a JPEG, PNG or WebP photo")


def _decode(path: Path, limits: Limits) -> np.ndarray:
    with Image.open(path, formats=pillow_formats()) as opened:
        check_photo_size(path, opened.width, opened.height, limits)  # before decoding
        if getattr(opened, "is_animated", False) and opened.format != "MPO":
            raise ImageLoadError(
                path,
                f"an animated or multi-page {opened.format} image; save the frame you want "
                "as a photo, or analyse it as a clip",
            )
        opened.load()
        try:
            return np.asarray(pil_to_rgb(opened))
        except ValueError:  # e.g. LAB or HSV TIFFs, which Pillow cannot turn into RGB
            raise ImageLoadError(
                path, f"colour mode {opened.mode} cannot be read; save it as an RGB JPEG or PNG"
            ) from None


def load_image(image: ImageInput, limits: Limits | None = None) -> np.ndarray:
    """Read a path, PIL image or array as an HxWx3 uint8 RGB array (EXIF orientation applied).

    Files are read by their content (``face_mtl.formats.PHOTO_FORMATS``), whatever their
    name. Raises ImageLoadError, naming the file, for missing, empty, truncated or non-image
    files and animated images, and LimitExceededError for photos outside ``limits`` (default:
    ``current_limits()``): a file too large, too many pixels (checked before decoding), or too
    few to hold a face.
    """
    limits = limits or current_limits()
    if isinstance(image, np.ndarray):
        rgb = array_to_rgb(image)  # checks the shape first
        check_photo_size(None, rgb.shape[1], rgb.shape[0], limits)
        return rgb
    if isinstance(image, Image.Image):
        check_photo_size(None, image.width, image.height, limits)
        return np.asarray(pil_to_rgb(image))
    if not isinstance(image, (str, Path)):
        raise ImageLoadError(None, f"unsupported image input of type {type(image).__name__}")
    path = Path(image)
    if not path.exists():
        raise ImageLoadError(path, "no such file")
    if path.is_dir():
        raise ImageLoadError(path, "is a directory, not an image")
    if path.stat().st_size == 0:
        raise ImageLoadError(path, "empty file")
    check_file_size(path, limits)
    try:
        # Pillow warns about odd but readable files (corrupt EXIF, large images): not the user's concern.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _decode(path, limits)
    except UnidentifiedImageError:
        raise _unreadable(path) from None
    except Image.DecompressionBombError as error:
        raise _decompression_bomb(path, error, limits) from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError) as error:
        if isinstance(error, FaceMTLInputError):
            raise
        raise ImageLoadError(path, f"corrupt or truncated image ({error})") from None


def decode_image(data: bytes, name: str, limits: Limits | None = None) -> np.ndarray:
    """Decode an encoded image file's bytes (JPEG, PNG, ...) exactly as load_image reads the
    file: the same checks and limits, and errors that name ``name`` (usually the file's path)."""
    import tempfile

    # Through a private temporary file: content sniffing, size limits and messages then come
    # from the one reader every other input goes through.
    with tempfile.TemporaryDirectory(prefix="face_mtl_") as folder:
        path = Path(folder) / "image"
        path.write_bytes(data)
        try:
            return load_image(path, limits)
        except FaceMTLInputError as error:
            raise type(error)(name, error.problem) from None
