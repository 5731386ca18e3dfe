"""A corpus of awkward inputs, generated (never stored in git): photos and clips that face_mtl
must either analyse normally or refuse with a clear one-line message.

``KINDS`` lists every kind with what is expected of it; ``build_corpus(folder)`` writes one
file per kind (a few seconds, mostly ffmpeg) and returns {kind name: path}. Faces come from the
public-domain example photo ``examples/grace_hopper.jpg``. Used by tests/test_bad_inputs.py and
bench/load_test.py.
"""

from __future__ import annotations

import io
import struct
import subprocess
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, features

from face_mtl.errors import FaceMTLInputError, ImageLoadError, LimitExceededError, VideoLoadError
from face_mtl.limits import Limits

ROOT = Path(__file__).resolve().parent.parent
FACE_PHOTO = ROOT / "examples" / "grace_hopper.jpg"
# The limits the corpus is built against (the defaults); the app and CLI under test use them.
LIMITS = Limits()


@dataclass(frozen=True)
class Kind:
    """One kind of input. ``media``: "photo" or "clip" (which entry point gets it).
    ``refusal``: the FaceMTLInputError subclass it must raise, or None when it must simply
    work. ``problem``: text the refusal's message contains (lower case). ``faces``: for a
    photo that works, how many faces it must give."""

    name: str
    media: str
    refusal: type[FaceMTLInputError] | None
    problem: str = ""
    faces: int = 1

    @property
    def valid(self) -> bool:
        return self.refusal is None


# ---------------------------------------------------------------------------- sources


def face_image(width: int = 256) -> Image.Image:
    """Grace Hopper's portrait (one face), ``width`` pixels wide, RGB."""
    with Image.open(FACE_PHOTO) as photo:
        photo = photo.convert("RGB")
        return photo.resize((width, round(photo.height * width / photo.width / 2) * 2))


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _ffmpeg() -> str:
    from face_mtl.video import _ffmpeg

    return _ffmpeg()


def _run_ffmpeg(*arguments: str) -> None:
    subprocess.run([_ffmpeg(), "-v", "error", "-y", "-nostdin", *arguments], check=True, timeout=120)


def _face_clip(path: Path, image: Image.Image, seconds: float = 2.0, *extra: str) -> Path:
    still = path.with_suffix(".source.png")
    image.save(still)
    _run_ffmpeg(
        "-loop", "1", "-framerate", "10", "-i", str(still), "-t", f"{seconds:g}",
        *extra, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path),
    )  # fmt: skip
    still.unlink()
    return path


def _lavfi_clip(path: Path, source: str, seconds: float, *extra: str) -> Path:
    _run_ffmpeg(
        "-f", "lavfi", "-i", source, "-t", f"{seconds:g}", *extra,
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path),
    )  # fmt: skip
    return path


def _bilevel_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of ``width`` x ``height`` white pixels, streamed row by row: a
    decompression bomb of a few hundred kilobytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + b"\xff" * ((width + 7) // 8)  # filter byte, then the packed pixels
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(row) for _ in range(height)]
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def _with_exif_segment(jpeg: bytes, payload: bytes) -> bytes:
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + segment + jpeg[2:]


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("photo.txt", "not a photo\n" * 20)
    return buffer.getvalue()


# ---------------------------------------------------------------------------- photos


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _photo_makers(folder: Path) -> dict[str, Callable[[], Path]]:
    face = face_image()
    jpeg = _encoded(face, "JPEG", quality=90)
    png = _encoded(face, "PNG")

    def sixteen_bit() -> Path:
        gray = np.asarray(face.convert("L"), dtype=np.uint16) * 257
        path = folder / "deep_16bit.png"
        Image.fromarray(gray).save(path)
        return path

    def transparent() -> Path:
        canvas = Image.new("RGBA", (face.width + 80, face.height + 80), (0, 0, 0, 0))
        canvas.paste(face.convert("RGBA"), (40, 40))
        path = folder / "transparent.png"
        canvas.save(path)
        return path

    def animated_gif() -> Path:
        frames = [face.convert("P"), face.transpose(Image.Transpose.FLIP_LEFT_RIGHT).convert("P")]
        path = folder / "animated.gif"
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=200, loop=0)
        return path

    def multipage_tiff() -> Path:
        path = folder / "pages.tiff"
        face.save(path, save_all=True, append_images=[face.convert("L").convert("RGB")])
        return path

    def exif_rotated() -> Path:
        # Stored sideways with orientation 6 ("rotate 90° clockwise to view"), as phones do.
        exif = Image.Exif()
        exif[0x0112] = 6
        path = folder / "phone_rotated.jpg"
        face.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif.tobytes())
        return path

    def many_faces() -> Path:
        tile = face_image(64)
        grid = Image.new("RGB", (tile.width * 20, tile.height * 10), "white")
        for column in range(20):
            for row in range(10):
                grid.paste(tile, (column * tile.width, row * tile.height))
        path = folder / "crowd_200.jpg"
        grid.save(path, quality=90)
        return path

    def wide_strip() -> Path:
        small = face_image(100)
        strip = Image.new("RGB", (3000, small.height), "white")
        strip.paste(small, (1450, 0))
        path = folder / "panorama_strip.png"
        strip.save(path)
        return path

    def unicode_path() -> Path:
        path = folder / "my photos" / "grâce ホッパー photo.jpg"
        path.parent.mkdir(exist_ok=True)
        return _write(path, jpeg)

    def clip_as_photo() -> Path:
        return _face_clip(folder / "holiday.mp4", face, 1.0)

    def heic() -> Path:
        # An ISO-BMFF file of brand heic: what iPhones save and Pillow cannot read.
        ftyp = b"ftyp" + b"heic" + b"\x00\x00\x00\x00" + b"mif1heic"
        data = struct.pack(">I", len(ftyp) + 4) + ftyp + struct.pack(">I", 16) + b"meta" + b"\x00" * 8
        return _write(folder / "IMG_0001.heic", data + b"\x00" * 200)

    makers: dict[str, Callable[[], Path]] = {
        "photo_empty": lambda: _write(folder / "empty.jpg", b""),
        "photo_truncated_jpeg": lambda: _write(folder / "truncated.jpg", jpeg[: len(jpeg) * 6 // 10]),
        "photo_truncated_png": lambda: _write(folder / "truncated.png", png[: len(png) // 2]),
        "photo_damaged_png": lambda: _write(folder / "damaged.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64),
        "photo_text_as_jpg": lambda: _write(folder / "notes.jpg", b"Shopping list\n- milk\n- bread\n" * 5),
        "photo_zip_as_jpg": lambda: _write(folder / "archive.jpg", _zip_bytes()),
        "photo_svg": lambda: _write(
            folder / "drawing.svg",
            b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
            b'<circle cx="32" cy="32" r="30" fill="orange"/></svg>\n',
        ),
        "photo_heic": heic,
        "photo_clip_as_photo": clip_as_photo,
        "photo_1x1": lambda: _write(folder / "pixel.png", _encoded(Image.new("RGB", (1, 1), "gray"), "PNG")),
        "photo_11x11": lambda: _write(folder / "icon.png", _encoded(face.resize((11, 11)), "PNG")),
        "photo_5x3000": lambda: _write(folder / "sliver.png", _encoded(Image.new("RGB", (5, 3000), "gray"), "PNG")),
        "photo_decompression_bomb": lambda: _write(folder / "bomb.png", _bilevel_png(20_000, 20_000)),
        "photo_animated_gif": animated_gif,
        "photo_multipage_tiff": multipage_tiff,
        "photo_wide_strip": wide_strip,
        "photo_16bit": sixteen_bit,
        "photo_cmyk": lambda: _write(folder / "print_cmyk.jpg", _encoded(face.convert("CMYK"), "JPEG")),
        "photo_palette": lambda: _write(folder / "palette.png", _encoded(face.convert("P"), "PNG")),
        "photo_gray_alpha": lambda: _write(folder / "gray_alpha.png", _encoded(face.convert("LA"), "PNG")),
        "photo_rgba_transparent": transparent,
        "photo_exif_rotated": exif_rotated,
        "photo_corrupt_exif": lambda: _write(
            folder / "corrupt_exif.jpg", _with_exif_segment(jpeg, b"Exif\x00\x00" + bytes(range(256)) * 2)
        ),
        "photo_png_named_jpg": lambda: _write(folder / "actually_png.jpg", png),
        "photo_200_faces": many_faces,
        "photo_unicode_path": unicode_path,
    }
    if features.check("avif"):
        makers["photo_avif"] = lambda: _write(folder / "photo.avif", _encoded(face, "AVIF"))
    return makers


# ---------------------------------------------------------------------------- clips


def _clip_makers(folder: Path) -> dict[str, Callable[[], Path]]:
    face = face_image()

    def truncated() -> Path:
        # Without faststart the index (moov) is at the end: half a file has none.
        whole = _face_clip(folder / "whole.mp4", face, 2.0)
        data = whole.read_bytes()
        whole.unlink()
        return _write(folder / "truncated.mp4", data[: len(data) // 2])

    def audio_only() -> Path:
        path = folder / "voice_memo.mp4"
        _run_ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "aac", str(path))
        return path

    def zero_frames() -> Path:
        # A video stream with a header and not one frame.
        return _lavfi_clip(folder / "no_frames.avi", "color=c=gray:s=64x64:r=5", 0)

    def rotated() -> Path:
        # Stored sideways, shown upright by a display-rotation tag, as phones record portrait.
        sideways = _face_clip(folder / "sideways.mp4", face.rotate(-90, expand=True), 2.0)
        path = folder / "portrait.mp4"
        _run_ffmpeg("-display_rotation", "90", "-i", str(sideways), "-c", "copy", str(path))
        sideways.unlink()
        return path

    def variable_rate() -> Path:
        # 20 frames in the first second, then one every 75 ms (timestamps stretched by half).
        still = folder / "vfr_source.png"
        face.save(still)
        path = folder / "variable_rate.mp4"
        _run_ffmpeg(
            "-loop", "1", "-framerate", "20", "-i", str(still), "-t", "2",
            "-vf", "setpts='(N/20+if(gt(N,20),0.5*(N-20)/20,0))/TB'", "-fps_mode", "vfr",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path),
        )  # fmt: skip
        still.unlink()
        return path

    def unicode_path() -> Path:
        path = folder / "my clips" / "clip ünïcode 動画.mp4"
        path.parent.mkdir(exist_ok=True)
        return _face_clip(path, face, 2.0)

    def playlist() -> Path:
        # An HLS playlist that names a local file: a container that reads other files.
        text = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"
        return _write(folder / "playlist.mp4", text.encode())

    frames = int(LIMITS.max_clip_frames) + 1200
    return {
        "clip_empty": lambda: _write(folder / "empty.mp4", b""),
        "clip_truncated": truncated,
        "clip_text_as_mp4": lambda: _write(folder / "notes.mp4", b"not a video\n" * 50),
        "clip_zip_as_mp4": lambda: _write(folder / "archive.mp4", _zip_bytes()),
        "clip_playlist": playlist,
        "clip_audio_only": audio_only,
        "clip_zero_frames": zero_frames,
        "clip_photo_as_clip": lambda: _write(folder / "still.png", _encoded(face, "PNG")),
        "clip_huge_resolution": lambda: _lavfi_clip(folder / "huge.mp4", "color=c=gray:s=5000x4000:r=2", 1),
        "clip_very_long": lambda: _lavfi_clip(
            folder / "two_hours.mp4", "color=c=gray:s=16x16:r=1", LIMITS.max_clip_seconds * 120
        ),
        "clip_too_many_frames": lambda: _lavfi_clip(
            folder / "high_rate.mp4", "color=c=gray:s=16x16:r=240", frames / 240
        ),
        "clip_variable_frame_rate": variable_rate,
        "clip_rotation_tag": rotated,
        "clip_unicode_path": unicode_path,
    }


# ---------------------------------------------------------------------------- the corpus

_PHOTO, _CLIP = "photo", "clip"
KINDS: tuple[Kind, ...] = (
    Kind("photo_empty", _PHOTO, ImageLoadError, "empty file"),
    Kind("photo_truncated_jpeg", _PHOTO, ImageLoadError, "truncated"),
    Kind("photo_truncated_png", _PHOTO, ImageLoadError, "truncated"),
    Kind("photo_damaged_png", _PHOTO, ImageLoadError, "corrupt or incomplete"),
    Kind("photo_text_as_jpg", _PHOTO, ImageLoadError, "not an image: a text file"),
    Kind("photo_zip_as_jpg", _PHOTO, ImageLoadError, "not an image: a zip archive"),
    Kind("photo_svg", _PHOTO, ImageLoadError, "not an image: an svg drawing"),
    Kind("photo_heic", _PHOTO, ImageLoadError, "heic/heif photo"),
    Kind("photo_clip_as_photo", _PHOTO, ImageLoadError, "analyse it as a clip"),
    Kind("photo_1x1", _PHOTO, LimitExceededError, "1x1 pixels, too small to hold a face"),
    Kind("photo_11x11", _PHOTO, LimitExceededError, "11x11 pixels, too small to hold a face"),
    Kind("photo_5x3000", _PHOTO, LimitExceededError, "5x3000 pixels, too small to hold a face"),
    Kind("photo_decompression_bomb", _PHOTO, LimitExceededError, "megapixel limit"),
    Kind("photo_animated_gif", _PHOTO, ImageLoadError, "animated or multi-page gif"),
    Kind("photo_multipage_tiff", _PHOTO, ImageLoadError, "animated or multi-page tiff"),
    Kind("photo_wide_strip", _PHOTO, None),
    Kind("photo_16bit", _PHOTO, None),
    Kind("photo_cmyk", _PHOTO, None),
    Kind("photo_palette", _PHOTO, None),
    Kind("photo_gray_alpha", _PHOTO, None),
    Kind("photo_rgba_transparent", _PHOTO, None),
    Kind("photo_exif_rotated", _PHOTO, None),
    Kind("photo_corrupt_exif", _PHOTO, None),
    Kind("photo_png_named_jpg", _PHOTO, None),
    Kind("photo_200_faces", _PHOTO, None, faces=LIMITS.max_faces),
    Kind("photo_unicode_path", _PHOTO, None),
    *([Kind("photo_avif", _PHOTO, None)] if features.check("avif") else []),
    Kind("clip_empty", _CLIP, VideoLoadError, "empty file"),
    Kind("clip_truncated", _CLIP, VideoLoadError, "damaged, incomplete"),
    Kind("clip_text_as_mp4", _CLIP, VideoLoadError, "not a video: a text file"),
    Kind("clip_zip_as_mp4", _CLIP, VideoLoadError, "not a video: a zip archive"),
    Kind("clip_playlist", _CLIP, VideoLoadError, "not a video: a text file"),
    Kind("clip_audio_only", _CLIP, VideoLoadError, "no video stream: an audio file"),
    Kind("clip_zero_frames", _CLIP, VideoLoadError, "no video frames"),
    Kind("clip_photo_as_clip", _CLIP, VideoLoadError, "not a video: a still image (png)"),
    Kind("clip_huge_resolution", _CLIP, LimitExceededError, "5000x4000 pixels, larger than"),
    Kind("clip_very_long", _CLIP, LimitExceededError, "longer than the 60 s limit"),
    Kind("clip_too_many_frames", _CLIP, LimitExceededError, "frame limit"),
    Kind("clip_variable_frame_rate", _CLIP, None),
    Kind("clip_rotation_tag", _CLIP, None),
    Kind("clip_unicode_path", _CLIP, None),
)
KINDS_BY_NAME = {kind.name: kind for kind in KINDS}


def build_corpus(folder: Path, names: Iterable[str] | None = None) -> dict[str, Path]:
    """Write the files of ``names`` (default: every kind) under ``folder`` (photos/, clips/);
    returns {kind name: path}."""
    photos, clips = folder / "photos", folder / "clips"
    photos.mkdir(parents=True, exist_ok=True)
    clips.mkdir(parents=True, exist_ok=True)
    makers = {**_photo_makers(photos), **_clip_makers(clips)}
    wanted = list(KINDS_BY_NAME) if names is None else list(names)
    return {name: makers[name]() for name in wanted}
