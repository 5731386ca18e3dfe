"""Input limits (face_mtl.limits), the error family (face_mtl.errors) and content sniffing
(face_mtl.formats): pure functions, no model."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from face_mtl.errors import FaceMTLInputError, ImageLoadError, LimitExceededError, VideoLoadError
from face_mtl.formats import describe_content
from face_mtl.images import load_image
from face_mtl.limits import ENVIRONMENT, Limits, check_clip, check_photo_size


def test_defaults_and_environment_variables():
    assert Limits.from_environ({}) == Limits()
    limits = Limits.from_environ(
        {"FACE_MTL_MAX_UPLOAD_MB": "10", "FACE_MTL_MAX_PIXELS": "2e7", "FACE_MTL_MAX_FACES": "5",
         "FACE_MTL_MAX_CLIP_SECONDS": "30", "FACE_MTL_MAX_CLIP_FRAMES": "900", "FACE_MTL_MAX_CLIP_SIDE": "1920"}
    )  # fmt: skip
    assert limits == Limits(10, 20_000_000, 5, 30, 900, 1920)
    assert limits.max_upload_bytes == 10 * 1024 * 1024
    assert isinstance(limits.max_faces, int)
    assert set(ENVIRONMENT) == {f.name for f in Limits.__dataclass_fields__.values()}


def test_live_limits_come_from_the_environment():
    limits = Limits.from_environ({"FACE_MTL_MAX_LIVE_SECONDS": "45", "FACE_MTL_MAX_LIVE_SESSIONS": "3.0"})
    assert (limits.max_live_seconds, limits.max_live_sessions) == (45.0, 3)
    assert isinstance(limits.max_live_sessions, int)  # Gradio's concurrency_limit wants a count
    with pytest.raises(ValueError, match="FACE_MTL_MAX_LIVE_SESSIONS"):
        Limits.from_environ({"FACE_MTL_MAX_LIVE_SESSIONS": "0"})


@pytest.mark.parametrize("value", ["", "  "])
def test_empty_variables_keep_the_default(value):
    assert Limits.from_environ({"FACE_MTL_MAX_FACES": value}) == Limits()


@pytest.mark.parametrize("value", ["abc", "0", "-5", "inf", "nan"])
def test_bad_variables_are_named(value):
    with pytest.raises(ValueError, match="FACE_MTL_MAX_PIXELS"):
        Limits.from_environ({"FACE_MTL_MAX_PIXELS": value})


def test_limits_are_validated_and_can_be_lifted():
    with pytest.raises(ValueError, match="max_faces"):
        Limits(max_faces=0)
    unlimited = Limits(max_upload_mb=math.inf, max_clip_seconds=math.inf)
    assert unlimited.max_upload_bytes is None
    check_clip("a.mp4", duration=1e6, frames=10, width=64, height=64, limits=unlimited)


def test_error_family_says_one_line_naming_the_input():
    error = LimitExceededError("/srv/upload/x.png", "too\nmany   pixels")
    assert isinstance(error, FaceMTLInputError) and isinstance(error, ValueError)
    assert str(error) == "/srv/upload/x.png: too many pixels"
    assert error.message_for("x.png") == "x.png: too many pixels"
    assert str(ImageLoadError(None, "bad array")) == "bad array"
    assert issubclass(VideoLoadError, FaceMTLInputError)
    from face_mtl.video import VideoError

    assert VideoError is VideoLoadError  # the old name still works


@pytest.mark.parametrize(
    ("size", "message"),
    [((8000, 7000), "56 megapixels"), ((19, 500), "too small"), ((500, 19), "too small")],
)
def test_photo_size_limits(size, message):
    with pytest.raises(LimitExceededError, match=message):
        check_photo_size("p.png", *size, Limits())
    check_photo_size("p.png", 20, 20, Limits())


def test_limits_apply_to_arrays_and_pil_images_too():
    with pytest.raises(LimitExceededError, match="too small"):
        load_image(np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(LimitExceededError, match="megapixel limit"):
        load_image(Image.new("RGB", (400, 300)), Limits(max_pixels=100_000))


def test_file_size_limit_is_checked_before_reading(tmp_path):
    path = tmp_path / "big.jpg"
    path.write_bytes(b"\xff\xd8\xff" + b"\x00" * 2_000_000)
    with pytest.raises(LimitExceededError, match=r"1\.9 MB, larger than the 1 MB limit"):
        load_image(path, Limits(max_upload_mb=1))


def test_detector_finds_nothing_rather_than_failing_on_slivers():
    # A 3000 x 25 strip is downscaled to 800 x 7 for detection: no face fits MTCNN's window.
    from face_mtl.detect import MTCNNDetector

    assert MTCNNDetector().detect(np.full((25, 3000, 3), 128, np.uint8)) == []


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"hello world\n", "a text file"),
        (b"PK\x03\x04rest", "a ZIP archive"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg">', "an SVG drawing"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "an HEIC/HEIF photo"),
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00", "a video or audio file (MP4/MOV)"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "a still image (PNG)"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "a still image (WebP)"),
        (b"BMW is a car", "a text file"),
        (b"\x00\x01\x02\x03\xfe", None),
        (b"", None),
    ],
)
def test_content_is_described_by_its_bytes_not_its_name(head, kind):
    assert describe_content(head) == kind
