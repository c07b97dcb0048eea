"""Prepare throughput, measured in one run: pairs/s of `prepare_pairs` with 1 worker vs all cores, and photo decoding
at full size vs reduced (JPEG draft / Pillow reduce) as prepare does it.

Usage: python bench/prepare_throughput.py [--pairs 240] [--kaggle-pairs 60] [--size 256]
Data: the generated seed-layout sample (512x256 PNG pairs), and a Kaggle-like folder of 1000x750 RGBA PNG photos
with RGBA masks holding R = G = B = class id (the published format; photos are real scikit-image photos, resized).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as skdata

from pix2pix.data.images import decode_photo
from pix2pix.data.prepare import PrepareConfig, prepare_pairs
from pix2pix.data.sample import load_backgrounds, render_car_scene, write_sample_archive

KAGGLE_HW = (750, 1000)
BIG_HW = (4000, 6000)


def measure(source: Path, out: Path, size: int, workers: int) -> float:
    cfg = PrepareConfig(image_size=(size, size), resize_policy="stretch", min_valid_pairs=1)
    start = time.perf_counter()
    manifest = prepare_pairs(source, out, cfg, workers=workers)
    return manifest["counts"]["pairs"] / (time.perf_counter() - start)


def kaggle_folder(root: Path, count: int) -> Path:
    """``root/images/*.png`` RGBA photos and ``root/masks/*.png`` RGBA masks with R = G = B = id, 1000x750."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    backgrounds = load_backgrounds()
    for index in range(count):
        photo, mask = render_car_scene(np.random.default_rng(index), KAGGLE_HW, backgrounds)
        alpha = np.full(mask.shape, 255, dtype=np.uint8)
        Image.fromarray(np.dstack([photo, alpha])).save(root / "images" / f"{index:04d}.png")
        Image.fromarray(np.dstack([mask, mask, mask, alpha])).save(root / "masks" / f"{index:04d}.png")
    return root


def decode_seconds(data: bytes, at_least_hw: tuple[int, int] | None, repeats: int = 3) -> tuple[float, tuple[int, ...]]:
    """Best-of-``repeats`` time to decode ``data`` as prepare does, and the decoded shape."""
    best, shape = float("inf"), ()
    for _ in range(repeats):
        start = time.perf_counter()
        image, _ = decode_photo(data, "bench", at_least_hw)
        best, shape = min(best, time.perf_counter() - start), image.shape
    return best, shape


def big_photos() -> dict[str, bytes]:
    """A 6000x4000 real photo (astronaut, upscaled) as RGBA PNG and as JPEG, the largest size of the Kaggle set."""
    photo = Image.fromarray(skdata.astronaut()).resize((BIG_HW[1], BIG_HW[0]), Image.Resampling.BILINEAR)
    encoded = {}
    for name, image, fmt in (("6000x4000 RGBA PNG", photo.convert("RGBA"), "PNG"), ("6000x4000 JPEG", photo, "JPEG")):
        path = Path(tempfile.gettempdir()) / f"bench-{os.getpid()}.{fmt.lower()}"
        image.save(path, format=fmt, compress_level=1) if fmt == "PNG" else image.save(path, format=fmt, quality=90)
        encoded[name] = path.read_bytes()
        path.unlink()
    return encoded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=240)
    parser.add_argument("--kaggle-pairs", type=int, default=60)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as scratch:
        archive = write_sample_archive(Path(scratch) / "sample.zip", n_pairs=args.pairs, seed=0)
        folder = kaggle_folder(Path(scratch) / "kaggle", args.kaggle_pairs)
        rows = []
        for label, source, count in (("seed sample 512x256 PNG", archive, args.pairs), ("Kaggle-like 1000x750 RGBA PNG", folder, args.kaggle_pairs)):
            rates = [measure(source, Path(scratch) / f"out{workers}", args.size, workers) for workers in (1, cores)]
            rows.append((label, count, rates))
    print(f"prepare → {args.size}px on {cores} cores")
    print(f"{'data':<32} {'pairs':>6} {'1 worker':>10} {f'{cores} workers':>10} {'speed-up':>9}")
    for label, count, (single, parallel) in rows:
        print(f"{label:<32} {count:>6} {single:>9.1f}/s {parallel:>9.1f}/s {parallel / single:>8.2f}x")
    print(f"\nphoto decoding for {args.size}px: full size vs reduced (JPEG draft / Pillow reduce), best of 3")
    print(f"{'photo':<20} {'full s':>8} {'reduced s':>10} {'full MB':>8} {'reduced MB':>11} {'speed-up':>9}")
    for name, data in big_photos().items():
        full_s, full_shape = decode_seconds(data, None)
        small_s, small_shape = decode_seconds(data, (args.size, args.size))
        full_mb, small_mb = np.prod(full_shape) / 1e6, np.prod(small_shape) / 1e6
        print(f"{name:<20} {full_s:>8.2f} {small_s:>10.2f} {full_mb:>8.1f} {small_mb:>11.2f} {full_s / small_s:>8.2f}x")


if __name__ == "__main__":
    main()
