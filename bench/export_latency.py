"""Exported generator vs PyTorch: max difference, ONNX file size and CPU latency per image, in one run.

Usage: python bench/export_latency.py [--size 256] [--ngf 64] [--batchnorm running,test_batch] [--repeats 5] [--warmup 2]

For each batch-norm mode a generator file of the paper's architecture (random weights, batch-norm statistics set
away from any batch's so that the two modes differ) is exported with ``pix2pix.training.export.export_generator``
and both implementations translate the same random input at batch 1, alternating, ``--repeats`` times each:

- pytorch: the generator through ``inference_view`` (the code `translate` runs), eager fp32, ``torch.no_grad``;
- onnxruntime: the exported file in an ``InferenceSession`` with the CPU provider and its default settings.

The table shows the fastest repeat of each (timings on a shared machine only get slower through other load), the
ratio onnxruntime / pytorch, the export time, the file size and the largest absolute difference of the outputs at
batch 1 and 3 (outputs are in [-1, 1]).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from pix2pix.training.checkpoint import save_atomic
from pix2pix.training.export import INPUT_NAME, export_generator
from pix2pix.training.generator_file import generator_payload
from pix2pix.training.model import InferenceMode, ModelConfig, build_generator, inference_view


def fastest_seconds(run, repeats: int, warmup: int) -> float:
    """The fastest of ``repeats`` timed calls of ``run`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_mode(size: int, ngf: int, batchnorm: str, repeats: int, warmup: int, folder: Path) -> dict[str, float]:
    torch.manual_seed(0)
    cfg = ModelConfig(image_size=size, ngf=ngf, ndf=ngf)
    generator = build_generator(cfg).eval()
    with torch.no_grad():
        for module in generator.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.3, 0.3)
                module.running_var.uniform_(0.5, 2.0)
    mode = InferenceMode(batchnorm=batchnorm, dropout=False, batch_size=1)
    model_path, onnx_path = folder / f"{batchnorm}.pt", folder / f"{batchnorm}.onnx"
    save_atomic(generator_payload(generator, cfg, "AtoB", 0, mode, None), model_path)
    start = time.perf_counter()
    export_generator(model_path, "onnx", onnx_path)
    export_s = time.perf_counter() - start
    session = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    view = inference_view(generator, mode)
    rng = np.random.default_rng(0)
    diffs = []
    for batch in (1, 3):
        images = rng.uniform(-1, 1, (batch, 3, size, size)).astype(np.float32)
        with torch.no_grad():
            expected = view(torch.from_numpy(images)).numpy()
        diffs.append(float(np.abs(session.run(None, {INPUT_NAME: images})[0] - expected).max()))
    image = rng.uniform(-1, 1, (1, 3, size, size)).astype(np.float32)
    tensor = torch.from_numpy(image)

    def run_torch() -> None:
        with torch.no_grad():
            view(tensor)

    def run_onnx() -> None:
        session.run(None, {INPUT_NAME: image})

    torch_s, onnx_s = [], []
    for _ in range(2):  # alternate so that both see the same background load
        torch_s.append(fastest_seconds(run_torch, repeats, warmup))
        onnx_s.append(fastest_seconds(run_onnx, repeats, warmup))
    return {
        "export_s": export_s, "size_mb": onnx_path.stat().st_size / 1e6, "diff_b1": diffs[0], "diff_b3": diffs[1],
        "torch_ms": 1000 * min(torch_s), "onnx_ms": 1000 * min(onnx_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--batchnorm", default="running,test_batch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), onnxruntime {onnxruntime.__version__}, "
          f"{args.size} px, ngf {args.ngf}, batch 1, fastest of {args.repeats}")
    print("| batch norm | export s | ONNX MB | max diff b1 | max diff b3 | PyTorch ms/img | ORT ms/img | ORT / PyTorch |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as scratch:
        for batchnorm in args.batchnorm.split(","):
            r = bench_mode(args.size, args.ngf, batchnorm, args.repeats, args.warmup, Path(scratch))
            print(f"| {batchnorm} | {r['export_s']:.1f} | {r['size_mb']:.1f} | {r['diff_b1']:.1e} | {r['diff_b3']:.1e} | "
                  f"{r['torch_ms']:.0f} | {r['onnx_ms']:.0f} | {r['onnx_ms'] / r['torch_ms']:.2f} |")


if __name__ == "__main__":
    main()
