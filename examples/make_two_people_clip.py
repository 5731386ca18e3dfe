"""Make examples/two_people.mp4: two public-domain portraits gliding past each other.

Eileen Collins (astronaut.png, NASA) moves left to right along the top, Grace Hopper
(grace_hopper.jpg, U.S. Navy) right to left along the bottom; both are public domain. The
clip is 4 s of 640x360 at 15 fps, H.264 (yuv420p), no audio. Run from anywhere:

    python examples/make_two_people_clip.py
"""

from __future__ import annotations

from pathlib import Path

import imageio_ffmpeg
import numpy as np
from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
WIDTH, HEIGHT, FPS, SECONDS = 640, 360, 15, 4.0
TILE = 168  # portrait side in pixels; the face is about half of it
# Square regions (left, top, right, bottom) around each face in the source photos.
PORTRAITS = {
    "astronaut.png": (120, 12, 328, 220),
    "grace_hopper.jpg": (58, 23, 473, 438),
}


def portrait(name: str) -> Image.Image:
    with Image.open(HERE / name) as image:
        tile = image.convert("RGB").crop(PORTRAITS[name]).resize((TILE, TILE), Image.LANCZOS)
    return ImageOps.expand(tile, border=3, fill=(250, 250, 245))


def background() -> Image.Image:
    # A soft vertical gradient, so the frame is not a flat colour the encoder squeezes to nothing.
    rows = np.linspace(0.0, 1.0, HEIGHT)[:, None, None]
    top, bottom = np.array([176, 196, 214]), np.array([92, 110, 132])
    gradient = (top * (1 - rows) + bottom * rows).astype(np.uint8)
    return Image.fromarray(np.broadcast_to(gradient, (HEIGHT, WIDTH, 3)).copy())


def frames() -> list[np.ndarray]:
    first, second = portrait("astronaut.png"), portrait("grace_hopper.jpg")
    side = first.width
    left, right = 16, WIDTH - side - 16
    count = round(SECONDS * FPS)
    out = []
    for i in range(count):
        progress = i / (count - 1)
        canvas = background()
        bob = round(6 * np.sin(2 * np.pi * progress))  # a little vertical drift
        canvas.paste(first, (round(left + (right - left) * progress), 8 + bob))
        canvas.paste(second, (round(right - (right - left) * progress), HEIGHT - side - 8 - bob))
        out.append(np.asarray(canvas))
    return out


def main() -> None:
    target = HERE / "two_people.mp4"
    writer = imageio_ffmpeg.write_frames(
        str(target),
        (WIDTH, HEIGHT),
        fps=FPS,
        codec="libx264",
        pix_fmt_out="yuv420p",
        quality=None,
        macro_block_size=2,  # 640x360 is even: H.264 needs no more
        output_params=["-crf", "28", "-preset", "slow", "-movflags", "+faststart"],
    )
    writer.send(None)
    for frame in frames():
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    print(f"wrote {target} ({target.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
