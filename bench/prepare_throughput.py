"""Prepare throughput: pairs/s of `prepare_pairs` on the generated sample, 1 worker vs all cores, in one run.

Usage: python bench/prepare_throughput.py [--pairs 240] [--size 256]
Prints a table and the speed-up of the parallel run over the single-process one.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from pix2pix.data.prepare import PrepareConfig
from pix2pix.data.palette import CAR_PALETTE
from pix2pix.data.prepare import prepare_pairs
from pix2pix.data.sample import write_sample_archive


def measure(archive: Path, out: Path, size: int, workers: int) -> float:
    cfg = PrepareConfig(image_size=(size, size), resize_policy="stretch", palette=CAR_PALETTE, min_valid_pairs=1)
    start = time.perf_counter()
    manifest = prepare_pairs(archive, out, cfg, workers=workers)
    return manifest["counts"]["pairs"] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=240)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as scratch:
        archive = write_sample_archive(Path(scratch) / "sample.zip", n_pairs=args.pairs, seed=0)
        rows = [(workers, measure(archive, Path(scratch) / f"out{workers}", args.size, workers)) for workers in (1, cores)]
    print(f"prepare {args.pairs} seed-layout pairs (512x256 PNG) → {args.size}px, {cores} cores")
    print(f"{'workers':>8} {'pairs/s':>10}")
    for workers, rate in rows:
        print(f"{workers:>8} {rate:>10.1f}")
    print(f"parallel speed-up: {rows[1][1] / rows[0][1]:.2f}x")


if __name__ == "__main__":
    main()
