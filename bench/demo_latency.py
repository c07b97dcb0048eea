"""Demo latency: milliseconds of one ``generate`` of the ``pix2pix demo`` page on this machine.

Usage: python bench/demo_latency.py [--repeats 20] [--device cpu]

Times :meth:`pix2pix.serving.demo.Demo.generate_from_ids` — what the page's generate asks for, less HTTP: the class
map painted with the palette, the generator in the paper's test-time mode (batch statistics of the image, dropout
on) and the PNG encoding — at 128 px with the default run's widths (ngf 32) and at 256 px with the paper's (ngf 64).
The generators are freshly initialised: a forward pass costs the same whatever the weights learned. Prints, for the
generator alone (the latency the page shows), the first call of a fresh process and the median and fastest of
``--repeats`` runs after :data:`WARMUP` (the first few calls of a process are much slower), and the whole call's
median.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from pix2pix.data.palette import CAR_CLASSES, CAR_PALETTE
from pix2pix.serving.demo import Demo
from pix2pix.serving.description import ModelDescription
from pix2pix.training.model import InferenceMode, ModelConfig, build_generator

CASES = ((128, 32, "default run (ngf 32)"), (256, 64, "paper widths (ngf 64)"))
# Calls before the timed ones: PyTorch's CPU kernels are slow for the first few calls of each shape.
WARMUP = 10


def measure(size: int, ngf: int, repeats: int, device: torch.device) -> tuple[list[float], list[float]]:
    """Generator and whole-call milliseconds of ``WARMUP + repeats`` generates of one painted class map."""
    torch.manual_seed(0)
    generator = build_generator(ModelConfig(size, ngf=ngf, ndf=ngf)).to(device).eval()
    description = ModelDescription("label_map", CAR_PALETTE, CAR_CLASSES, (), (size, size), "AtoB")
    demo = Demo(generator, description, InferenceMode(), device)
    ids = np.zeros((size, size), dtype="<u2")
    ids[size // 3 : 2 * size // 3, size // 8 : -size // 8] = 1  # a car body on the background
    generator_ms, call_ms = [], []
    for run in range(WARMUP + repeats):
        start = time.perf_counter()
        result = demo.generate_from_ids(ids.tobytes(), seed=run)
        elapsed_ms = (time.perf_counter() - start) * 1000
        generator_ms.append(result.latency_ms)
        call_ms.append(elapsed_ms)
    return generator_ms, call_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"device {device}, torch threads {torch.get_num_threads()}, {args.repeats} timed runs after {WARMUP} warm-up")
    print("| size | model | first call ms | generator median ms | generator min ms | whole call median ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for size, ngf, label in CASES:
        generator_ms, call_ms = measure(size, ngf, args.repeats, device)
        timed, timed_calls = generator_ms[WARMUP:], call_ms[WARMUP:]
        print(f"| {size} px | {label} | {generator_ms[0]:.0f} | {statistics.median(timed):.0f} | {min(timed):.0f} | "
              f"{statistics.median(timed_calls):.0f} |")


if __name__ == "__main__":
    main()
