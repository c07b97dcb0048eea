"""One rank's training machinery: networks (wrapped for DDP/compile), optimizers, scaler, batches and the step.

Data: a background thread gathers the next batch straight from the uint8 pairs memory map into one of two
persistent (pinned, on CUDA) host buffers while the current step runs (:class:`BatchPrefetcher`); the batch is
copied to the device without blocking, and converted and jittered there (:mod:`pix2pix.training.augment`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from pix2pix.data.store import Pairs, take_pairs
from pix2pix.devices import cpu_bf16_units, cpu_flags
from pix2pix.errors import ConfigError
from pix2pix.training import distributed
from pix2pix.training.augment import JitterParams, jitter_pairs, pairs_to_float
from pix2pix.training.config import TrainConfig
from pix2pix.training.distributed import DistInfo
from pix2pix.training.losses import discriminator_loss, generator_adversarial_loss, l1_loss
from pix2pix.training.model import build_discriminator, build_generator
from pix2pix.training.pixels import oriented
from pix2pix.training.schedule import EpochPlan

log = logging.getLogger(__name__)

# Device types with a fused Adam kernel.
FUSED_ADAM_DEVICES = ("cpu", "cuda")


def accelerated(cfg: TrainConfig, device: torch.device, amp_dtype: torch.dtype | None) -> bool:
    """Whether channels_last applies on ``device``: on CUDA, and on CPU with autocast or ``accelerate_cpu``."""
    return device.type == "cuda" or (device.type == "cpu" and (cfg.accelerate_cpu or amp_dtype is not None))


def resolve_amp(
    mode: str, device: torch.device, accelerate_cpu: bool = False, cpu_units: str | None = None
) -> torch.dtype | None:
    """Autocast dtype for ``mode`` on ``device``; None means fp32.

    CUDA: "auto" is bf16 where the GPU computes it natively (Ampere and later), else fp16 with a gradient
    scaler — ``torch.cuda.is_bf16_supported()`` alone also counts emulated bf16, which would make T4/V100 run
    slow emulated kernels. CPU (``cpu_units``: :func:`pix2pix.devices.cpu_bf16_units` of this CPU): "auto" is bf16
    where the CPU computes it natively (AMX or AVX512-BF16), fp32 elsewhere; "bf16" needs those units;
    ``accelerate_cpu`` (tests, benchmarks) forces "auto" to bf16 and allows "fp16". "off" is fp32 everywhere.
    """
    if mode == "off":
        return None
    if device.type == "cpu" and accelerate_cpu:
        return torch.float16 if mode == "fp16" else torch.bfloat16
    if device.type == "cpu":
        if mode == "bf16" and cpu_units is None:
            raise ConfigError("amp bf16: this CPU has no native bf16 units (no amx_bf16 or avx512_bf16 flag); use amp: auto or off")
        if mode == "fp16":
            log.warning("amp fp16 applies to CUDA only; training in fp32 on %s", device)
        return torch.bfloat16 if mode == "bf16" or (mode == "auto" and cpu_units is not None) else None
    if device.type != "cuda":
        if mode in ("bf16", "fp16"):
            log.warning("amp %s applies to CUDA and CPU only; training in fp32 on %s", mode, device)
        return None
    bf16_native = torch.cuda.is_bf16_supported(including_emulation=False)
    if mode == "bf16" and not bf16_native:
        raise ConfigError(f"amp bf16: {torch.cuda.get_device_name(device)} has no native bf16; use amp: fp16 or auto")
    if mode == "bf16" or (mode == "auto" and bf16_native):
        return torch.bfloat16
    return torch.float16


def describe_compute(device: torch.device, amp_dtype: torch.dtype | None, channels_last: bool, cpu_units: str | None) -> str:
    """One log line of the path that trains: device, precision, memory format, and the CPU's bf16 units."""
    precision = f"{str(amp_dtype).removeprefix('torch.')} autocast" if amp_dtype is not None else "fp32"
    text = f"{device.type}, {precision}{', channels_last' if channels_last else ''}"
    if device.type == "cpu":
        text += f" (native bf16 units: {cpu_units or 'none'})"
    return text


def match_parameter_layouts(optimizer: torch.optim.Optimizer) -> None:
    """Give every per-parameter optimizer state tensor its parameter's memory layout (strides), in place.

    ``load_state_dict`` keeps the strides a state was saved with, so a checkpoint written with channels_last
    parameters (CUDA) and loaded for contiguous ones (CPU), or the reverse, leaves Adam's ``exp_avg`` and
    ``exp_avg_sq`` in the other layout: the fused kernel then pairs the wrong elements on CPU (a resumed run
    drifts from a straight one; reported off by 0.014 after one step at lr 1e-2) and rejects the mix on CUDA.
    """
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            state = optimizer.state.get(parameter, {})
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and value.shape == parameter.shape and value.stride() != parameter.stride():
                    state[key] = torch.empty_like(parameter, dtype=value.dtype).copy_(value)


class BatchPrefetcher:
    """Gathers batches of pairs on a background thread into two persistent host buffers, one step ahead.

    While the model trains on the batch in one buffer, the thread fills the other with the next batch
    (``np.take`` straight from the memory map, which releases the GIL), so the host never waits for the gather
    (≈11 ms per 128 pairs at 256² with a reused buffer, 50–65 ms with fresh unpinned ones). On CUDA the buffers
    are pinned, the copy to the device does not block, and a buffer is refilled only after the CUDA event
    recorded behind its last copy has completed.
    """

    def __init__(self, pairs: Pairs, batch_size: int, device: torch.device) -> None:
        self.pairs, self.device = pairs, device
        pin = device.type == "cuda"
        self.buffers = [
            torch.empty((batch_size, *pairs.shape[1:]), dtype=torch.uint8, pin_memory=pin) for _ in range(2)
        ]
        self._copied: list[torch.cuda.Event | None] = [None, None]

    def _fill(self, slot: int, indices: np.ndarray) -> None:
        """Gather ``pairs[indices]`` into buffer ``slot`` once its previous copy to the device has finished."""
        event = self._copied[slot]
        if event is not None:
            event.synchronize()
        take_pairs(self.pairs, indices, self.buffers[slot].numpy())

    def batches(self, index_batches: Sequence[np.ndarray]) -> Iterator[torch.Tensor]:
        """Yield uint8 ``(b, 2, H, W, 3)`` batches of ``pairs[indices]`` on the device, one per index array.

        A yielded tensor may share memory with a host buffer (CPU): convert it before asking for the one
        after next. Closing the iterator early waits for the gather in flight.
        """
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pix2pix-batches") as executor:
            pending = executor.submit(self._fill, 0, index_batches[0]) if len(index_batches) else None
            for step in range(len(index_batches)):
                slot = step % 2
                pending.result()
                if step + 1 < len(index_batches):
                    pending = executor.submit(self._fill, 1 - slot, index_batches[step + 1])
                on_device = self.buffers[slot].to(self.device, non_blocking=True)
                if self.device.type == "cuda":
                    event = torch.cuda.Event()
                    event.record()
                    self._copied[slot] = event
                yield on_device


class _PairScores(nn.Module):
    """D on the real and on the generated pair in one forward, so DDP sees one forward per backward."""

    def __init__(self, discriminator: nn.Module) -> None:
        super().__init__()
        self.discriminator = discriminator

    def forward(self, a: torch.Tensor, real_b: torch.Tensor, fake_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(N, 1, h, w)`` for ``(a, real_b)`` and for ``(a, fake_b)`` (two batches: separate BN statistics)."""
        return self.discriminator(a, real_b), self.discriminator(a, fake_b)


class RankTrainer:
    """The networks (raw and wrapped for DDP/compile), optimizers, scaler and the data feed of one rank."""

    def __init__(self, cfg: TrainConfig, pairs: Pairs, info: DistInfo) -> None:
        self.cfg, self.pairs, self.info, self.device = cfg, pairs, info, info.device
        self.cuda = self.device.type == "cuda"
        cpu_units = cpu_bf16_units(cpu_flags()) if self.device.type == "cpu" else None
        self.amp_dtype = resolve_amp(cfg.amp, self.device, cfg.accelerate_cpu, cpu_units)
        self.accelerated = accelerated(cfg, self.device, self.amp_dtype)
        if info.is_main:
            log.info("compute: %s", describe_compute(self.device, self.amp_dtype, self.accelerated and cfg.channels_last, cpu_units))
        self.memory_format = torch.channels_last if self.accelerated and cfg.channels_last else torch.contiguous_format
        self.rank_batch = cfg.batch_size // info.world_size
        self.prefetcher = BatchPrefetcher(pairs, self.rank_batch, self.device)
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        self.g_raw = self._place(build_generator(cfg.model))
        self.d_raw = self._place(build_discriminator(cfg.model))
        self.opt_g, self.opt_d = self._adam(self.g_raw), self._adam(self.d_raw)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.g = self._compile(self._ddp(self.g_raw))
        self.d_pair = self._compile(self._ddp(_PairScores(self.d_raw)))
        # G's step needs no D gradients, so it calls D outside DDP (nothing to synchronise).
        self.d_single = self._compile(self.d_raw)

    def _place(self, module: nn.Module) -> nn.Module:
        """Synchronise batch norm across ranks, move to the device, and use channels_last where it pays."""
        if self.info.world_size > 1:
            module = distributed.convert_sync_batchnorm(module, self.device)
        return module.to(self.device, memory_format=self.memory_format)

    def _adam(self, module: nn.Module) -> torch.optim.Adam:
        """Adam over ``module``'s parameters, with the fused kernel where PyTorch has one (CPU and CUDA).

        The fused kernel makes one pass over each parameter instead of about ten elementwise ones: on 2 CPU
        cores G's update (54 M parameters) drops from ~170 ms, a fifth of a 256² batch-1 step, to ~30 ms. On
        CUDA it also skips GradScaler's host sync.
        """
        betas = (self.cfg.beta1, self.cfg.beta2)
        fused = True if self.device.type in FUSED_ADAM_DEVICES else None
        return torch.optim.Adam(module.parameters(), lr=self.cfg.lr, betas=betas, fused=fused)

    def _ddp(self, module: nn.Module) -> nn.Module:
        """``module`` wrapped for gradient averaging across ranks (unchanged in a single process)."""
        if self.info.world_size == 1:
            return module
        device_ids = [self.device.index] if self.cuda else None
        return DistributedDataParallel(module, device_ids=device_ids)

    def _compile(self, module: nn.Module) -> nn.Module:
        """``torch.compile(module)`` when asked for (CUDA: Triton kernels; CPU: Inductor's C++ backend), else ``module``."""
        return torch.compile(module) if self.cfg.compile else module

    def autocast(self) -> torch.autocast:
        """The mixed-precision context of this run (disabled for fp32)."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def set_lr(self, lr: float) -> None:
        """Use learning rate ``lr`` in both optimizers from the next step on."""
        for optimizer in (self.opt_g, self.opt_d):
            for group in optimizer.param_groups:
                group["lr"] = lr

    def state_dict(self) -> dict[str, Any]:
        """Weights, optimizer and scaler states (the parts of a checkpoint the trainer owns)."""
        return {
            "generator": self.g_raw.state_dict(),
            "discriminator": self.d_raw.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`state_dict` (the scaler state only when both sides use one).

        Works across devices and memory formats: optimizer states take their parameters' layout.
        """
        self.g_raw.load_state_dict(state["generator"])
        self.d_raw.load_state_dict(state["discriminator"])
        for optimizer, key in ((self.opt_g, "opt_g"), (self.opt_d, "opt_d")):
            optimizer.load_state_dict(state[key])
            match_parameter_layouts(optimizer)
        if state["scaler"] and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])

    def batches(self, plan: EpochPlan, first_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This rank's share of the steps of ``plan`` from ``first_step`` (0-based) on: (input, target), float
        ``(b, 3, H, W)`` in [-1, 1] on the device."""
        jitter = plan.jitter.to(self.device)
        steps = len(plan.order) // self.cfg.batch_size
        starts = [step * self.cfg.batch_size + self.info.rank * self.rank_batch for step in range(first_step, steps)]
        on_device = self.prefetcher.batches([plan.order[start : start + self.rank_batch] for start in starts])
        with contextlib.closing(on_device):
            yield from self._prepared(starts, on_device, jitter)

    def _prepared(
        self, starts: list[int], on_device: Iterator[torch.Tensor], jitter: JitterParams
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Convert, jitter and orient each uint8 device batch; ``starts`` are their first positions in the plan."""
        for start, pairs in zip(starts, on_device):
            a, b = pairs_to_float(pairs)
            if self.cfg.jitter or self.cfg.flip:
                positions = slice(start, start + self.rank_batch)
                a, b = jitter_pairs(a, b, jitter.select(positions), jitter=self.cfg.jitter, mask_input=self.cfg.mask_input)
            a, b = oriented(a, b, self.cfg.direction)
            yield a.contiguous(memory_format=self.memory_format), b.contiguous(memory_format=self.memory_format)

    def step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> torch.Tensor:
        """One D step then one G step; returns float32 ``(3,)`` = (G adversarial, D, L1) losses, not synced."""
        kind = self.cfg.gan_loss
        with self.autocast():
            fake_b = self.g(real_a)
        self.d_raw.requires_grad_(True)
        with self.autocast():
            real_logits, fake_logits = self.d_pair(real_a, real_b, fake_b.detach())
            loss_d = discriminator_loss(kind, real_logits, fake_logits)
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler.scale(loss_d).backward()
        self.scaler.step(self.opt_d)
        # D is frozen for G's step: no wasted D gradients, and none for DDP to expect.
        self.d_raw.requires_grad_(False)
        with self.autocast():
            loss_gan = generator_adversarial_loss(kind, self.d_single(real_a, fake_b))
            loss_l1 = l1_loss(fake_b, real_b)
            loss_g = loss_gan + self.cfg.lambda_l1 * loss_l1
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(loss_g).backward()
        self.scaler.step(self.opt_g)
        self.scaler.update()
        return torch.stack([loss_gan, loss_d, loss_l1]).detach()

    def mean_over_ranks(self, sums: torch.Tensor, count: int, stop: bool) -> tuple[list[float], bool]:
        """Global means of the loss ``sums`` over ``count`` steps per rank, and whether any rank must stop.

        This is the one host synchronisation, done at log steps and epoch ends only.
        """
        packed = torch.cat([sums / count, torch.tensor([float(stop)], device=sums.device)])
        values = distributed.all_reduce_sum(packed, self.info.world_size).tolist()
        return [value / self.info.world_size for value in values[:3]], values[3] > 0
