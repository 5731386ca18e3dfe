"""Carry the training caches to another machine (a GPU host, say) in a fraction of their size.

The crop caches (``crops{size}/NAME.npz``, data/sets.py) hold uint8 crops: 1.3 GB at 64 px,
mostly FER+ grayscale stored as RGB. ``pack`` writes each split as one small npz: its crops
tiled into JPEG mosaics (grayscale sets in one channel; tiles padded to whole JPEG blocks, so
no block straddles two crops), its labels as they are, and the teacher's descriptors as int8
directions (the distillation loss uses only their direction). ``unpack`` rebuilds the caches,
so ``build_splits`` and training read them on a machine without the photos.

The packs are re-encodings of the training photos: keep them out of the repository.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.sets import CropSet, crop_folder

TILE_MULTIPLE = 16  # the JPEG block grid of 4:2:0 colour (8 for grayscale)
MOSAIC_COLUMNS = 64
ROWS_PER_MOSAIC = 128  # each mosaic at most 64 x 128 tiles (under PIL's decompression-bomb warning)
LABEL_FIELDS = ("emotion", "age", "gender", "ethnicity", "identity", "smiling")


def _tile_side(side: int) -> int:
    return -(-side // TILE_MULTIPLE) * TILE_MULTIPLE


def encode_crops(crops: np.ndarray, quality: int) -> tuple[list[bytes], bool]:
    """N x S x S x 3 uint8 crops -> JPEG mosaics, and whether they were stored as grayscale."""
    gray = bool(len(crops)) and bool((crops[..., 0] == crops[..., 1]).all() and (crops[..., 0] == crops[..., 2]).all())
    tiles = crops[..., :1] if gray else crops
    side, tile = crops.shape[1], _tile_side(crops.shape[1])
    per_mosaic = MOSAIC_COLUMNS * ROWS_PER_MOSAIC
    mosaics = []
    for start in range(0, len(tiles), per_mosaic):
        chunk = tiles[start : start + per_mosaic]
        rows = -(-len(chunk) // MOSAIC_COLUMNS)
        padded = np.pad(chunk, ((0, rows * MOSAIC_COLUMNS - len(chunk)), (0, tile - side), (0, tile - side), (0, 0)),
                        mode="edge")
        grid = padded.reshape(rows, MOSAIC_COLUMNS, tile, tile, -1).swapaxes(1, 2).reshape(
            rows * tile, MOSAIC_COLUMNS * tile, -1)
        image = Image.fromarray(grid[..., 0] if gray else grid)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality, subsampling=2)
        mosaics.append(buffer.getvalue())
    return mosaics, gray


def decode_crops(mosaics: list[bytes], count: int, side: int, gray: bool) -> np.ndarray:
    tile = _tile_side(side)
    crops = np.empty((count, side, side, 3), np.uint8)
    done = 0
    for data in mosaics:
        grid = np.asarray(Image.open(io.BytesIO(data)).convert("L" if gray else "RGB"))
        rows, columns = grid.shape[0] // tile, grid.shape[1] // tile
        tiles = grid.reshape(rows, tile, columns, tile, -1).swapaxes(1, 2).reshape(rows * columns, tile, tile, -1)
        take = min(len(tiles), count - done)
        crops[done : done + take] = tiles[:take, :side, :side]  # broadcasts one gray channel to three
        done += take
    if done != count:
        raise ValueError(f"the mosaics hold {done} crops, not {count}")
    return crops


def quantise_directions(descriptors: np.ndarray) -> np.ndarray:
    """Rows as int8 directions (all-zero rows, i.e. no teacher, stay zero)."""
    norms = np.linalg.norm(descriptors, axis=1, keepdims=True)
    unit = np.divide(descriptors, norms, out=np.zeros_like(descriptors), where=norms > 0)
    # Each row scaled to use int8's whole range: only the direction matters.
    peak = np.abs(unit).max(axis=1, keepdims=True)
    return np.round(np.divide(unit, peak, out=np.zeros_like(unit), where=peak > 0) * 127).astype(np.int8)


def pack_split(crop_set: CropSet, path: Path, quality: int = 85) -> int:
    """One split as one npz; returns its size in bytes."""
    mosaics, gray = encode_crops(crop_set.crops, quality)
    arrays = {f"mosaic{i}": np.frombuffer(m, np.uint8) for i, m in enumerate(mosaics)}
    arrays.update({f: getattr(crop_set, f) for f in LABEL_FIELDS})
    if crop_set.teacher.any():
        arrays["teacher_int8"] = quantise_directions(crop_set.teacher)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, count=len(crop_set), side=crop_set.crops.shape[1], gray=gray, mosaics=len(mosaics), **arrays)
    return path.stat().st_size


def unpack_split(path: Path) -> tuple[CropSet, bool]:
    """The CropSet of a pack, and whether it carried teacher descriptors (unit length)."""
    with np.load(path) as data:
        crops = decode_crops([data[f"mosaic{i}"].tobytes() for i in range(int(data["mosaics"]))],
                             int(data["count"]), int(data["side"]), bool(data["gray"]))
        labels = {f: data[f] for f in LABEL_FIELDS if f in data}  # packs from before "smiling" lack it
        has_teacher = "teacher_int8" in data
        if has_teacher:
            directions = data["teacher_int8"].astype(np.float32)
            norms = np.linalg.norm(directions, axis=1, keepdims=True)
            teacher = np.divide(directions, norms, out=np.zeros_like(directions), where=norms > 0)
        else:
            teacher = None
    if teacher is None:
        teacher = np.zeros((len(crops), 128), np.float32)
    return CropSet(crops=crops, teacher=teacher, **labels), has_teacher


def pack(cache_dir: Path, size: int, out_dir: Path, quality: int = 85, names: list[str] | None = None) -> dict[str, int]:
    """The splits ``names`` (default: all) of ``cache_dir/crops{size}``, teacher descriptors
    attached where cached; returns each pack's size in bytes."""
    from ..data.sets import attach_teacher

    folder = Path(cache_dir) / crop_folder(size)
    cached = sorted(p.stem for p in folder.glob("*.npz") if not p.stem.endswith(".tmp"))
    missing = sorted(set(names or []) - set(cached))
    if missing or not cached:
        raise FileNotFoundError(f"no crop cache {', '.join(missing) or 'at all'} in {folder}: build it first")
    names = names or cached
    splits = {name: CropSet.load(Path(cache_dir) / crop_folder(size) / f"{name}.npz") for name in names}
    attach_teacher(splits, Path(cache_dir))
    return {name: pack_split(crop_set, Path(out_dir) / f"{name}.npz", quality) for name, crop_set in splits.items()}


def unpack(pack_dirs: list[Path], cache_dir: Path, size: int) -> list[str]:
    """Rebuild ``cache_dir/crops{size}/NAME.npz`` (and ``teacher/NAME.npz``) from the packs."""
    done = []
    for pack_dir in pack_dirs:
        for path in sorted(Path(pack_dir).glob("*.npz")):
            crop_set, has_teacher = unpack_split(path)
            target = Path(cache_dir) / crop_folder(size) / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            CropSet(**{**crop_set.__dict__, "teacher": np.zeros_like(crop_set.teacher)}).save(target)
            if has_teacher:
                teacher = Path(cache_dir) / "teacher" / path.name
                teacher.parent.mkdir(parents=True, exist_ok=True)
                np.savez(teacher, teacher=crop_set.teacher)
            done.append(path.stem)
    return done


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Pack the training caches compactly, or unpack them")
    sub = parser.add_subparsers(dest="command", required=True)
    packer = sub.add_parser("pack", help="crop caches (+ teacher) -> one small npz per split")
    packer.add_argument("--cache", default=".cache")
    packer.add_argument("--input-size", type=int, default=64)
    packer.add_argument("--out", required=True, help="folder for the packs (keep it out of git)")
    packer.add_argument("--quality", type=int, default=85, help="JPEG quality of the mosaics (default 85)")
    packer.add_argument("--sets", nargs="+", help="splits to pack (default: every cached one)")
    unpacker = sub.add_parser("unpack", help="packs -> crop caches (+ teacher)")
    unpacker.add_argument("packs", nargs="+", help="folders of packs")
    unpacker.add_argument("--cache", default=".cache")
    unpacker.add_argument("--input-size", type=int, default=64)
    args = parser.parse_args(argv)
    if args.command == "pack":
        sizes = pack(Path(args.cache), args.input_size, Path(args.out), args.quality, args.sets)
        for name, size in sizes.items():
            print(f"{name}: {size / 1e6:.1f} MB")
        print(f"total {sum(sizes.values()) / 1e6:.1f} MB in {args.out}")
    else:
        print("unpacked:", ", ".join(unpack([Path(p) for p in args.packs], Path(args.cache), args.input_size)))


if __name__ == "__main__":
    main()
