"""Which file formats face_mtl reads, decided by content (never by the file name), and a
plain name for common files it does not read, so a refusal can say what the file is.

Photos are decoded by Pillow with only ``PHOTO_FORMATS`` enabled; clips are opened by ffmpeg
with only ``CLIP_DEMUXERS`` enabled, so a playlist or an unusual container never reaches a
demuxer that would open other files or URLs.
"""

from __future__ import annotations

import functools
from pathlib import Path

# Pillow format names (JPEG includes MPO, the JPEGs of many phones, which carry a second
# picture). AVIF needs a Pillow built with libavif; without it AVIF photos are refused.
PHOTO_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "AVIF")
# ffmpeg demuxer names (its -format_whitelist): MP4/MOV, Matroska/WebM, AVI, MPEG program and
# transport streams, FLV, ASF/WMV, Ogg and animated GIF.
CLIP_DEMUXERS = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpeg,mpegts,flv,asf,ogg,gif"

HEAD_BYTES = 512

_STILL = "a still image"
_ISO_BRANDS = {
    b"heic": "an HEIC/HEIF photo",
    b"heix": "an HEIC/HEIF photo",
    b"heim": "an HEIC/HEIF photo",
    b"heis": "an HEIC/HEIF photo",
    b"hevc": "an HEIC/HEIF photo sequence",
    b"mif1": "an HEIC/HEIF photo",
    b"msf1": "an HEIC/HEIF photo sequence",
    b"avif": "an AVIF photo",
    b"avis": "an AVIF image sequence",
}
_SIGNATURES = (
    (b"\xff\xd8\xff", f"{_STILL} (JPEG)"),
    (b"\x89PNG\r\n\x1a\n", f"{_STILL} (PNG)"),
    (b"GIF87a", f"{_STILL} (GIF)"),
    (b"GIF89a", f"{_STILL} (GIF)"),
    (b"II*\x00", f"{_STILL} (TIFF)"),
    (b"MM\x00*", f"{_STILL} (TIFF)"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"PK\x05\x06", "a ZIP archive"),
    (b"%PDF", "a PDF document"),
    (b"\x1a\x45\xdf\xa3", "a video (Matroska/WebM)"),
    (b"ID3", "an audio file (MP3)"),
    (b"fLaC", "an audio file (FLAC)"),
    (b"OggS", "an Ogg audio or video file"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
)


@functools.lru_cache(maxsize=1)
def pillow_formats() -> tuple[str, ...]:
    """PHOTO_FORMATS that this Pillow can open."""
    from PIL import Image

    Image.init()  # registers every plugin Pillow has (idempotent)
    return tuple(name for name in PHOTO_FORMATS if name in Image.OPEN)


def read_head(path: str | Path) -> bytes:
    """The first HEAD_BYTES bytes of a file (fewer for a shorter file)."""
    with open(path, "rb") as file:
        return file.read(HEAD_BYTES)


def _riff(head: bytes) -> str | None:
    kind = head[8:12]
    return {
        b"WEBP": f"{_STILL} (WebP)",
        b"AVI ": "a video (AVI)",
        b"WAVE": "an audio file (WAV)",
    }.get(kind)


def _text(head: bytes) -> str | None:
    if b"\x00" in head:
        return None
    try:
        text = head[:-4].decode("utf-8") if len(head) == HEAD_BYTES else head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lowered = text.lower()
    if "<svg" in lowered:
        return "an SVG drawing"
    if "<html" in lowered or "<!doctype html" in lowered:
        return "an HTML page"
    return "a text file"


def describe_content(head: bytes) -> str | None:
    """A plain name ("a ZIP archive", "a still image (PNG)", "an HEIC/HEIF photo", "a text
    file"...) for what the first bytes of a file show, or None when they show nothing known."""
    if not head:
        return None
    if head[4:8] == b"ftyp":
        return _ISO_BRANDS.get(head[8:12], "a video or audio file (MP4/MOV)")
    if head.startswith(b"RIFF"):
        return _riff(head)
    if head.startswith(b"BM") and head[6:10] == b"\x00\x00\x00\x00":  # reserved fields are zero
        return f"{_STILL} (BMP)"
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            return name
    return _text(head)


def is_still_image(description: str | None) -> bool:
    return bool(description) and description.startswith(_STILL)
