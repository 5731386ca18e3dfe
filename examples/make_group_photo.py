"""Make examples/group.jpg: four public-domain portraits side by side, for the app's examples.

Grace Hopper (grace_hopper.jpg, U.S. Navy, public domain), Eileen Collins (astronaut.png, NASA,
public domain; once large, once mirrored and small) and scikit-image's "camera" image (Lav
Varshney, CC0) on a plain background, bottoms aligned. MTCNN finds exactly four faces, from
about 175 down to 50 pixels wide. Needs scikit-image (for the camera image only). Run from
anywhere:

    python examples/make_group_photo.py
"""

from __future__ import annotations

from pathlib import Path

import skimage.data
from PIL import Image

HERE = Path(__file__).resolve().parent
GAP = 24
BACKGROUND = (236, 232, 224)


def main() -> None:
    astronaut = Image.open(HERE / "astronaut.png").convert("RGB")
    hopper = Image.open(HERE / "grace_hopper.jpg").convert("RGB")
    camera = Image.fromarray(skimage.data.camera()).convert("RGB")
    collins = astronaut.crop((100, 0, 350, 300))
    tiles = [
        hopper.crop((80, 30, 450, 480)),
        collins,
        camera.crop((150, 70, 310, 260)).resize((240, 285), Image.LANCZOS),
        collins.transpose(Image.FLIP_LEFT_RIGHT).resize((150, 180), Image.LANCZOS),
    ]
    height = max(t.height for t in tiles) + 2 * GAP
    width = sum(t.width for t in tiles) + GAP * (len(tiles) + 1)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    x = GAP
    for tile in tiles:
        canvas.paste(tile, (x, height - GAP - tile.height))
        x += tile.width + GAP
    canvas.save(HERE / "group.jpg", quality=90)


if __name__ == "__main__":
    main()
