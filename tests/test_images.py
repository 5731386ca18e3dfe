"""Every PIL mode users upload becomes HxWx3 uint8 RGB."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from face_mtl.images import ImageLoadError, load_image


@pytest.fixture()
def photo(grace_hopper_path) -> Image.Image:
    return Image.open(grace_hopper_path).convert("RGB").resize((128, 150))


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "F"])
def test_modes_convert_to_rgb(photo, tmp_path, mode):
    if mode in ("I;16", "I", "F"):
        gray = np.asarray(photo.convert("L"), dtype=np.float64)
        scale = 1.0 / 255.0 if mode == "F" else 257.0
        converted = Image.fromarray((gray * scale).astype({"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]))
        converted = converted if mode != "I;16" else converted.convert("I;16")
    else:
        converted = photo.convert(mode)
    array = load_image(converted)
    assert array.shape == (150, 128, 3) and array.dtype == np.uint8
    # Brightness survives the conversion (16-bit and float are rescaled, not clipped).
    assert abs(float(array.mean()) - float(np.asarray(photo.convert("L")).mean())) < 20


def test_sixteen_bit_png_file(photo, tmp_path):
    path = tmp_path / "deep.png"
    gray16 = (np.asarray(photo.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(gray16).save(path)
    array = load_image(path)
    assert array.dtype == np.uint8 and array.shape == (150, 128, 3)
    assert array.max() > 200


def test_transparent_pixels_become_white(photo):
    rgba = photo.convert("RGBA")
    alpha = np.zeros((150, 128), np.uint8)
    rgba.putalpha(Image.fromarray(alpha))
    assert (load_image(rgba) == 255).all()


@pytest.mark.parametrize("shape", [(0, 10, 3), (10, 10, 2), (10,)])
def test_bad_arrays_are_refused(shape):
    with pytest.raises(ImageLoadError, match="shape"):
        load_image(np.zeros(shape, np.uint8))


def test_directory_is_refused(tmp_path):
    with pytest.raises(ImageLoadError, match="directory"):
        load_image(tmp_path)
