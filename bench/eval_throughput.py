"""Evaluation time: seconds to score 500 generated test images (generator, Inception, FID/KID/IS, L1/PSNR/SSIM).

Usage: python bench/eval_throughput.py [--images 500] [--sizes 64,256] [--before 53e130b] [--device cpu]

Times ``pix2pix.evaluation.scoring.evaluate_generator`` — one per-epoch evaluation, as the ``train`` and
``evaluate`` stages run it — on ``--images`` synthetic test pairs per size, with an untrained paper generator
(ngf 64) and the offline Inception trunk, for this checkout ("after") and for the evaluation code of the git
revision ``--before`` ("before"; default: the commit issue 10 started from), extracted with ``git archive``
into a temporary folder and run in its own process. Each side runs once per size after the reference features
are computed (not timed: the ``reference`` stage computes them once per data set). The mask-consistency score
is left out (the code before had none), so the two columns do the same work. Prints the table and the ratios.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BEFORE_DEFAULT = "53e130b"


def measure(size: int, images: int, device_name: str) -> dict[str, float]:
    """Seconds of one ``evaluate_generator`` call on ``images`` pairs at ``size`` px with the imported code."""
    import numpy as np
    import torch

    from pix2pix.evaluation import scoring
    from pix2pix.evaluation.inception import select_inception
    from pix2pix.training.model import ModelConfig, build_generator

    device = torch.device(device_name)
    rng = np.random.default_rng(0)
    # Smooth random images (not white noise) so that SSIM and Inception see image-like statistics.
    coarse = rng.integers(0, 256, (images, 2, size // 8, size // 8, 3), dtype=np.uint8)
    pairs = coarse.repeat(8, axis=2).repeat(8, axis=3)
    inputs, targets = pairs[:, 0], pairs[:, 1]
    torch.manual_seed(0)
    generator = build_generator(ModelConfig(size)).to(device)
    extractor = select_inception(None, device)
    reference = scoring.compute_reference(extractor, targets, np.arange(images))
    arguments = inspect.signature(scoring.evaluate_generator).parameters
    if "mode" in arguments:  # this checkout: the pipeline's default test-time mode
        from pix2pix.training.model import InferenceMode

        options = {"mode": InferenceMode(), "seed": 0}
    else:  # the code before issue 10
        options = {"inference_dropout": True, "seed": 0}
    started = time.perf_counter()
    scoring.evaluate_generator(generator, inputs, targets, extractor, reference, device, **options)
    return {"seconds": time.perf_counter() - started}


def run_side(code_root: Path, size: int, images: int, device: str) -> float:
    """Run :func:`measure` in a fresh process whose ``pix2pix`` package is the one under ``code_root``."""
    environment = {**os.environ, "PYTHONPATH": str(code_root)}
    command = [sys.executable, __file__, "--child", f"{size}:{images}:{device}"]
    output = subprocess.run(command, env=environment, cwd=code_root, check=True, capture_output=True, text=True)
    return json.loads(output.stdout.strip().splitlines()[-1])["seconds"]


def extract_revision(revision: str, target: Path) -> None:
    """Write the ``pix2pix`` package of git ``revision`` into ``target``."""
    archive = subprocess.run(["git", "archive", revision, "pix2pix"], cwd=REPO, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--sizes", default="64,256")
    parser.add_argument("--before", default=BEFORE_DEFAULT, help="git revision of the 'before' code")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        size, images, device = args.child.split(":")
        print(json.dumps(measure(int(size), int(images), device)))
        return
    sizes = [int(size) for size in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        extract_revision(args.before, Path(scratch))
        for size in sizes:
            before = run_side(Path(scratch), size, args.images, args.device)
            after = run_side(REPO, size, args.images, args.device)
            rows.append((size, before, after))
    print(f"evaluate_generator on {args.images} images, {args.device}, {os.cpu_count()} cores, before = {args.before}")
    print(f"{'size':>6} {'before s':>10} {'after s':>10} {'speed-up':>9}")
    for size, before, after in rows:
        print(f"{size:>6} {before:>10.1f} {after:>10.1f} {before / after:>8.2f}x")


if __name__ == "__main__":
    main()
