"""Training throughput: `pix2pix.training.loop.train` against a plain eager fp32 loop of the same networks, in one run.

Usage: python bench/train_throughput.py [--device auto] [--configs CUDA: 256:1,256:8 / CPU: 64:8,256:1] [--steps 3]
                                        [--warmup 2] [--repeats 2] [--peak-tflops 989] [--amp auto] [--compile]
                                        [--compare-compile] [--accelerate-cpu] [--ngf 64]

For each ``size:batch`` config both implementations train on the same synthetic uint8 pairs (held in memory),
alternating, ``--repeats`` times each; the table shows the fastest repeat of each (timings on a shared
machine only get slower through other load) and the highest peak memory.

- ours: the public ``train()`` for one epoch of ``warmup + steps`` steps with the settings of real use (jitter,
  flips, colour-mask input, AMP "auto", channels_last on CUDA; its checkpoint and generator snapshot are written
  after the epoch, outside the timed window). ``log_every_steps`` is ``warmup``, so the first progress report
  closes the warm-up interval; the timed window is the epoch's step time (the history's ``seconds``, which end
  with a device sync) minus that interval.
- baseline: the same architecture from ``pix2pix.training.model`` in the simplest loop: fp32, no AMP, no compile, no
  channels_last, no jitter, batches converted from the uint8 pairs every step, PyTorch's default backend flags.
  ``warmup`` untimed steps, then ``steps`` steps between two device syncs.
- ours+compile (``--compare-compile``): ours with ``train.compile: true`` (on CPU Inductor's C++ backend, fp32),
  with its compile time (warm-up time beyond what its steps take) and the steps after which that time is won
  back ("never" when the compiled step is not faster than ours). This is the table that decides whether
  compiling pays for a run of a given length.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` (reset before each run). On CPU the growth of the
process's peak resident set over its resident set at the start of the run (Linux: the peak is reset through
``/proc/self/clear_refs`` and read as ``VmHWM``, after ``gc`` and ``malloc_trim``); it includes the
networks, optimizer state, activations and batches, and for ours the epoch plan. Ours is read when ``train()``
returns, so it covers writing the checkpoint and the snapshot too: on CUDA those copy to host memory only; on CPU
with ``--accelerate-cpu`` the snapshot's contiguous copy of the channels_last generator can add up to one
generator's weights (218 MB at ngf 64) where it exceeds the training steps' peak.

Achieved FLOP/s counts 93 GFLOP per 256² image per step (G forward+backward, D forward+backward on the real
and the generated pair, D forward+input gradient for G's adversarial term), scaled by ``H·W / 256²``; on CUDA it is also shown as a share of ``--peak-tflops``
(dense bf16 tensor-core peak: H100 SXM ≈ 989, H100 PCIe ≈ 756, H200 ≈ 989, A100 ≈ 312).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import os
import resource
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pix2pix.training.model import ModelConfig, build_discriminator, build_generator
from pix2pix.devices import cpu_bf16_units, cpu_flags, pick_device
from pix2pix.training.loop import ProgressInfo, TrainConfig, train

GFLOP_PER_IMAGE_256 = 93.0
LAMBDA_L1 = 100.0
MIB = 2**20


@dataclass(frozen=True)
class Measurement:
    """One timed run: images per second, milliseconds per optimizer step, peak memory in MiB, and the wall time
    of the untimed warm-up steps (for ours with compile: mostly compilation)."""

    img_per_s: float
    ms_per_step: float
    peak_mib: float
    warmup_s: float = 0.0
    warmup_steps: int = 0

    @property
    def compile_s(self) -> float:
        """Warm-up time beyond what its steps take at the measured speed: compilation and autotuning."""
        return max(0.0, self.warmup_s - self.ms_per_step / 1000 * self.warmup_steps)


def parse_configs(text: str) -> list[tuple[int, int]]:
    """``"256:1,256:8"`` → ``[(256, 1), (256, 8)]`` (image side in px, batch size)."""
    configs = []
    for item in text.split(","):
        size, _, batch = item.strip().partition(":")
        if not (size.isdigit() and batch.isdigit()):
            raise argparse.ArgumentTypeError(f"{item!r} is not SIZE:BATCH, e.g. 256:8")
        configs.append((int(size), int(batch)))
    return configs


def synthetic_pairs(count: int, size: int, seed: int = 0) -> np.ndarray:
    """Random uint8 pairs ``(count, 2, size, size, 3)``; the content does not change the cost of a step."""
    return np.random.default_rng(seed).integers(0, 256, (count, 2, size, size, 3), dtype=np.uint8)


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously; the CPU does not)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PeakMemory:
    """Peak memory of one run: CUDA allocator peak, or on CPU the growth of the peak resident set (MiB)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.start_rss = 0.0

    def reset(self) -> None:
        """Start a new measurement window (frees what earlier runs left first)."""
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        # glibc keeps freed heap pages; hand them back so the next run's growth is visible.
        with contextlib.suppress(OSError, AttributeError):  # Linux/glibc only
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current VmRSS
        self.start_rss = _status_kib("VmRSS") / 1024

    def peak_mib(self) -> float:
        """Peak since :meth:`reset` (CPU without /proc: the lifetime ``ru_maxrss`` minus the starting RSS)."""
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / MIB
        peak = _status_kib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 1024 - self.start_rss


def _status_kib(field: str) -> float:
    """A ``kB`` field of /proc/self/status (0 where there is none)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return 0.0


def measure_ours(pairs: np.ndarray, batch: int, steps: int, warmup: int, device: torch.device,
                 args: argparse.Namespace) -> Measurement:
    """Time ``train()`` on ``pairs`` (``batch · (warmup + steps)`` of them): one epoch whose first log interval
    is the warm-up."""
    cfg = TrainConfig(model=model_config(pairs, args), batch_size=batch, epochs=1, log_every_steps=warmup, amp=args.amp,
                      compile=args.compile, accelerate_cpu=args.accelerate_cpu,
                      deterministic=getattr(args, "deterministic", False))
    first_rates: list[float] = []
    memory = PeakMemory(device)

    def on_progress(info: ProgressInfo) -> None:
        if not first_rates:
            first_rates.append(info.it_per_s)

    memory.reset()
    with tempfile.TemporaryDirectory(prefix="train_throughput_") as out_dir:
        result = train(cfg, pairs, Path(out_dir), progress=on_progress, device=device)
        peak = memory.peak_mib()
    seconds = result.history[0]["seconds"] - warmup / first_rates[0]
    return Measurement(steps * batch / seconds, 1000 * seconds / steps, peak, warmup / first_rates[0], warmup)


def measure_baseline(pairs: np.ndarray, batch: int, steps: int, warmup: int, device: torch.device,
                     args: argparse.Namespace) -> Measurement:
    """Time the plainest fp32 eager loop (same networks and losses, Adam) on ``pairs``: ``steps`` after ``warmup``.

    Of ``args`` (ours' options) only the network width ``ngf`` is used.
    """
    memory = PeakMemory(device)
    memory.reset()
    torch.manual_seed(0)
    model_cfg = model_config(pairs, args)
    generator = build_generator(model_cfg).to(device)
    discriminator = build_discriminator(model_cfg).to(device)
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            sync(device)
            start = time.perf_counter()
        images = torch.from_numpy(pairs[step * batch: (step + 1) * batch]).to(device)
        images = images.permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0
        real_a, real_b = images[:, 0], images[:, 1]
        fake_b = generator(real_a)
        real_logits = discriminator(real_a, real_b)
        fake_logits = discriminator(real_a, fake_b.detach())
        loss_d = 0.5 * (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                        + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        fake_logits = discriminator(real_a, fake_b)
        loss_g = (F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
                  + LAMBDA_L1 * F.l1_loss(fake_b, real_b))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
    sync(device)
    seconds = time.perf_counter() - start
    return Measurement(steps * batch / seconds, 1000 * seconds / steps, memory.peak_mib())


def model_config(pairs: np.ndarray, args: argparse.Namespace) -> ModelConfig:
    """The networks at the size of ``pairs`` with ``args.ngf`` filters in the first layer of G and D."""
    return ModelConfig(pairs.shape[2], ngf=args.ngf, ndf=args.ngf)


def measure_ours_compiled(pairs: np.ndarray, batch: int, steps: int, warmup: int, device: torch.device,
                          args: argparse.Namespace) -> Measurement:
    """:func:`measure_ours` with ``compile`` on."""
    return measure_ours(pairs, batch, steps, warmup, device, argparse.Namespace(**{**vars(args), "compile": True}))


def measure_ours_fp32(pairs: np.ndarray, batch: int, steps: int, warmup: int, device: torch.device,
                      args: argparse.Namespace) -> Measurement:
    """:func:`measure_ours` on the CPU's fp32 eager path (``amp: off``, no channels_last)."""
    fp32 = argparse.Namespace(**{**vars(args), "amp": "off", "accelerate_cpu": False})
    return measure_ours(pairs, batch, steps, warmup, device, fp32)


def measure_ours_bf16(pairs: np.ndarray, batch: int, steps: int, warmup: int, device: torch.device,
                      args: argparse.Namespace) -> Measurement:
    """:func:`measure_ours` on the CPU's bf16 path (bf16 autocast + channels_last, what ``amp: auto`` takes on AMX)."""
    bf16 = argparse.Namespace(**{**vars(args), "amp": "auto", "accelerate_cpu": True})
    return measure_ours(pairs, batch, steps, warmup, device, bf16)


def implementations(args: argparse.Namespace, device: torch.device) -> dict[str, Callable[..., Measurement]]:
    """The implementations to time, by table name: baseline and ours (on CPU both of its paths, fp32 and bf16), and
    ours+compile when compared."""
    chosen: dict[str, Callable[..., Measurement]] = {"baseline": measure_baseline, "ours": measure_ours}
    if device.type == "cpu":
        chosen = {"baseline": measure_baseline, "ours fp32": measure_ours_fp32, "ours bf16": measure_ours_bf16}
    if args.compare_compile:
        chosen["ours+compile"] = measure_ours_compiled
    return chosen


def break_even_steps(ours: Measurement, compiled: Measurement) -> str:
    """Steps after which the compiled run has won back its compile time, or "never" when its step is not faster."""
    saved_ms = ours.ms_per_step - compiled.ms_per_step
    return "never" if saved_ms <= 0 else f"{1000 * compiled.compile_s / saved_ms:.0f}"


def gflop_per_s(img_per_s: float, size: int) -> float:
    """Achieved GFLOP/s at 93 GFLOP per 256² image-step, scaled by the image area."""
    return img_per_s * GFLOP_PER_IMAGE_256 * size * size / 256**2


def run_config(size: int, batch: int, args: argparse.Namespace, device: torch.device) -> dict[str, Measurement]:
    """Best measurement of each implementation over ``args.repeats`` alternating runs at ``(size, batch)``."""
    pairs = synthetic_pairs(batch * (args.warmup + args.steps), size)
    chosen = implementations(args, device)
    runs: dict[str, list[Measurement]] = {name: [] for name in chosen}
    for repeat in range(args.repeats):
        # Alternate which one goes first, so neither always runs on a warmer (or more loaded) machine.
        names = list(chosen) if repeat % 2 == 0 else list(reversed(chosen))
        for name in names:
            runs[name].append(chosen[name](pairs, batch, args.steps, args.warmup, device, args))
    return {name: _best(results) for name, results in runs.items()}


def _best(results: list[Measurement]) -> Measurement:
    """The fastest repeat (the one least disturbed by other load), with the highest peak memory of all."""
    fastest = max(results, key=lambda result: result.img_per_s)
    return replace(fastest, peak_mib=max(result.peak_mib for result in results))


def describe_device(device: torch.device) -> str:
    """The device in words: GPU name, or CPU with its core and thread counts and current load."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    # Other processes on the cores slow OpenMP steps far more than their share: say how busy the machine was.
    load = f", 1-min load average {os.getloadavg()[0]:.2f} before the run" if hasattr(os, "getloadavg") else ""
    flags = cpu_flags()
    bf16 = sorted(flags & {"amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2"})
    return (f"CPU {cpu_model_name()} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads{load}; flags "
            f"{' '.join(bf16) or 'none of avx2/avx512/amx'}; amp auto takes {'bf16' if cpu_bf16_units(flags) else 'fp32'})")


def cpu_model_name() -> str:
    """The CPU's model name from /proc/cpuinfo ("unknown" elsewhere)."""
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--configs", type=parse_configs, default=None,
                        help="comma-separated SIZE:BATCH (default: 256:1,256:8 on CUDA; 64:8,256:1 on CPU, the "
                             "sample run's batch at its earlier size and the paper's setting)")
    parser.add_argument("--steps", type=int, default=3, help="timed optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed steps before them (compile: the first step compiles G and D, the second "
                             "G's step with D frozen)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs per implementation (best)")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="GPU dense bf16 peak, for the %% column")
    parser.add_argument("--amp", default="auto", help="ours: auto | bf16 | fp16 | off (CPU trains fp32 unless --accelerate-cpu)")
    parser.add_argument("--compile", action="store_true", help="ours: torch.compile the networks")
    parser.add_argument("--compare-compile", action="store_true",
                        help="add ours+compile: its step time, compile time and break-even step count")
    parser.add_argument("--accelerate-cpu", action="store_true", help="ours on CPU: amp and channels_last as on CUDA")
    parser.add_argument("--ngf", type=int, default=64, help="filters in the first layer of G and D (64: the paper's networks)")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 1 or args.repeats < 1:
        parser.error("--steps, --warmup and --repeats must be ≥ 1")
    device = pick_device(args.device)
    cuda = device.type == "cuda"
    configs = args.configs or parse_configs("256:1,256:8" if cuda else "64:8,256:1")
    print(f"train throughput on {describe_device(device)}, torch {torch.__version__}; ours: amp={args.amp} "
          f"compile={args.compile}; {args.warmup} warm-up + {args.steps} timed steps, best of {args.repeats}")
    header = f"{'size':>5} {'batch':>5} {'impl':>12} {'img/s':>8} {'ms/step':>9} {'GFLOP/s':>9}"
    header += f" {'% peak':>7}" if cuda else ""
    compile_columns = f" {'compile s':>9} {'break-even':>10}" if args.compare_compile else ""
    print(header + f" {'peak MiB':>9} {'vs base':>8}" + compile_columns, flush=True)
    for size, batch in configs:
        results = run_config(size, batch, args, device)
        for name, result in results.items():
            achieved = gflop_per_s(result.img_per_s, size)
            row = f"{size:>5} {batch:>5} {name:>12} {result.img_per_s:>8.2f} {result.ms_per_step:>9.1f} {achieved:>9.1f}"
            row += f" {100 * achieved / (args.peak_tflops * 1000):>6.1f}%" if cuda else ""
            row += f" {result.peak_mib:>9.0f}"
            if name != "baseline":
                row += f" {result.img_per_s / results['baseline'].img_per_s:>7.2f}x"
            if name == "ours+compile":
                plain = results.get("ours") or results["ours fp32"]
                row += f" {result.compile_s:>9.1f} {break_even_steps(plain, result):>10}"
            print(row, flush=True)


if __name__ == "__main__":
    main()
