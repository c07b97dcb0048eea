"""The pix2pix training loop: one code path for CPU, one GPU and many GPUs (DDP under ``torchrun``).

Per batch: one discriminator step (real pair vs. generated pair), then one generator step (fool D, plus
``lambda_l1`` · L1 to the target), Adam for both. The learning rate is constant for ``epochs`` epochs, then
decays linearly towards 0 over ``epochs_decay`` more (:func:`lr_at_epoch`).

Data: the uint8 pairs store is indexed straight from its memory map into a (pinned, on CUDA) batch buffer,
copied to the device without blocking, and converted and jittered there (:mod:`pix2pix.augment`).

Randomness: everything random in epoch ``e`` comes from generators seeded at the start of that epoch from
``(seed, e)`` — the visiting order and the jitter (identical on every rank) — and ``(seed, e, rank)`` — the
global torch/numpy/python RNGs that dropout uses. A checkpoint written at the end of an epoch therefore needs
no RNG state: resuming reseeds exactly as an uninterrupted run does, on any device, whatever ran in between
(callbacks, sample grids). With ``deterministic=True`` on CPU a resumed run is bit-identical to a straight one.

Files (rank 0 only), in ``out_dir``: ``checkpoint.pt`` after every epoch, ``samples/epoch_XXX.png`` per epoch,
``generator.pt`` at the end (formats in :mod:`pix2pix.checkpoint`). A run resumes from ``checkpoint.pt`` when
its weight-relevant config (:func:`config_hash`), its data and the learning rates of its finished epochs match;
otherwise it starts from scratch and says why (a ``logging`` warning and :attr:`TrainResult.fresh_start_reason`).
SIGTERM/SIGINT stop training at the next step boundary without writing a half-epoch: the interrupted epoch
restarts from the last end-of-epoch checkpoint (:class:`TrainingInterrupted`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from pix2pix import distributed
from pix2pix.atomic import atomic_path
from pix2pix.augment import JitterParams, draw_jitter, jitter_pairs, pairs_to_float
from pix2pix.checkpoint import (
    CHECKPOINT_FILE,
    FORMAT_VERSION,
    GENERATOR_FILE,
    generator_payload,
    load_checkpoint,
    save_atomic,
)
from pix2pix.distributed import DistInfo
from pix2pix.config import AMP_MODES, DIRECTIONS, flatten_keys
from pix2pix.errors import ConfigError, DataError, TrainingError
from pix2pix.losses import GAN_LOSSES, discriminator_loss, generator_adversarial_loss, l1_loss
from pix2pix.model import ModelConfig, build_discriminator, build_generator, set_inference_dropout

log = logging.getLogger(__name__)

SAMPLES_DIR = "samples"
# Fields that change neither the weights nor their updates, left out of config_hash. The schedule length
# (epochs, epochs_decay) is checked separately against the learning rates of the finished epochs, so that
# extending a run whose rates are unchanged resumes instead of starting over.
NON_WEIGHT_FIELDS = frozenset(
    {"epochs", "epochs_decay", "log_every_steps", "sample_count", "compile", "channels_last", "deterministic"}
)
# Pairs hashed into the data fingerprint: enough to notice another data set, cheap on a 20 GB memory map.
FINGERPRINT_PAIRS = 64
# Device types with a fused Adam kernel.
FUSED_ADAM_DEVICES = ("cpu", "cuda")
# Independent random streams derived from the seed.
_STREAM_DATA, _STREAM_GLOBAL, _STREAM_SAMPLES = 0, 1, 2


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run.

    ``batch_size`` is the global batch (split evenly over the ranks of a multi-GPU run, so the result does
    not depend on the number of GPUs). ``direction`` "BtoA" swaps the stored A and B at load time;
    ``mask_input`` says the *stored* A side is a colour mask (resized nearest-neighbour by the jitter).
    ``amp``: "auto" = bf16 autocast on GPUs that have it, else fp16 with a gradient scaler; ignored on CPU,
    which trains in fp32. ``compile`` and ``channels_last`` act on CUDA only. ``deterministic`` selects
    deterministic kernels (and turns off cudnn autotuning).
    """

    model: ModelConfig
    batch_size: int
    epochs: int
    direction: str = "AtoB"
    epochs_decay: int = 0
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lambda_l1: float = 100.0
    gan_loss: str = "vanilla"
    seed: int = 0
    jitter: bool = True
    flip: bool = True
    mask_input: bool = True
    amp: str = "auto"
    compile: bool = False
    channels_last: bool = True
    deterministic: bool = False
    log_every_steps: int = 50
    sample_count: int = 8

    def __post_init__(self) -> None:
        if isinstance(self.model, Mapping):
            object.__setattr__(self, "model", ModelConfig.from_dict(self.model))
        _check(isinstance(self.model, ModelConfig), f"train model must be a ModelConfig, got {self.model!r}")
        _check(
            self.model.in_channels == 3 and self.model.out_channels == 3,
            "model in_channels/out_channels must be 3: the pairs store holds RGB images",
        )
        _check(self.direction in DIRECTIONS, f"direction {self.direction!r} is not one of AtoB, BtoA")
        _check(self.gan_loss in GAN_LOSSES, f"gan_loss {self.gan_loss!r} is not one of {', '.join(GAN_LOSSES)}")
        _check(self.amp in AMP_MODES, f"amp {self.amp!r} is not one of {', '.join(AMP_MODES)}")
        for name, low in (("batch_size", 1), ("epochs", 1), ("log_every_steps", 1), ("epochs_decay", 0),
                          ("sample_count", 0), ("seed", 0)):
            value = getattr(self, name)
            _check(_is_int(value) and value >= low, f"{name} must be an integer ≥ {low}, got {value!r}")
        for name in ("jitter", "flip", "mask_input", "compile", "channels_last", "deterministic"):
            _check(isinstance(getattr(self, name), bool), f"{name} must be true or false, got {getattr(self, name)!r}")
        _check(_is_number(self.lr) and 0 < self.lr < math.inf, f"lr must be a positive number, got {self.lr!r}")
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            _check(_is_number(value) and 0 <= value < 1, f"{name} must be in [0, 1), got {value!r}")
        _check(
            _is_number(self.lambda_l1) and 0 <= self.lambda_l1 < math.inf,
            f"lambda_l1 must be a number ≥ 0, got {self.lambda_l1!r}; the paper uses 100",
        )

    @property
    def total_epochs(self) -> int:
        """``epochs + epochs_decay``."""
        return self.epochs + self.epochs_decay

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of builtins (the model as its own dict), safe for JSON and ``torch.save``."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["model"] = self.model.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; raise ConfigError on unknown keys."""
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        _check(not unknown, f"unknown train config keys {unknown}")
        return cls(**data)


def _check(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless ``condition``."""
    if not condition:
        raise ConfigError(message)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def config_hash(cfg: TrainConfig) -> str:
    """sha256 (hex) of the canonical JSON of the fields that affect the weights (all but NON_WEIGHT_FIELDS)."""
    relevant = {key: value for key, value in cfg.to_dict().items() if key not in NON_WEIGHT_FIELDS}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def data_fingerprint(pairs: np.ndarray) -> str:
    """sha256 (hex) of the shape of ``pairs`` and of up to 64 evenly spaced pairs; tells data sets apart cheaply."""
    digest = hashlib.sha256(repr(tuple(pairs.shape)).encode())
    for index in np.unique(np.linspace(0, len(pairs) - 1, min(len(pairs), FINGERPRINT_PAIRS)).round().astype(int)):
        digest.update(np.ascontiguousarray(pairs[index]).tobytes())
    return digest.hexdigest()


def lr_at_epoch(epoch: int, epochs: int, epochs_decay: int, lr: float) -> float:
    """Learning rate of 1-based ``epoch``: ``lr`` for the first ``epochs``, then linear decay towards 0.

    Epoch ``epochs + k`` uses ``lr · (1 − k / (epochs_decay + 1))``, so with 100 + 100 epochs at 2e-4:
    epoch 100 → 2.0e-4, 101 → 1.98e-4, 200 → 1.98e-6; the last epoch never trains at 0.
    """
    if not 1 <= epoch <= epochs + epochs_decay:
        raise ConfigError(f"epoch {epoch} is outside the schedule of {epochs} + {epochs_decay} epochs")
    if epoch <= epochs:
        return lr
    return lr * (1.0 - (epoch - epochs) / (epochs_decay + 1))


def derive_seed(*words: int) -> int:
    """A well-mixed 63-bit seed from non-negative integers (seed, epoch, stream, ...)."""
    return int(np.random.SeedSequence(list(words)).generate_state(1, np.uint64)[0] >> np.uint64(1))


def seed_global_rngs(seed: int, epoch: int, rank: int) -> None:
    """Seed torch (CPU and CUDA), numpy and python ``random`` for ``epoch`` on ``rank`` (dropout draws from these)."""
    value = derive_seed(seed, epoch, _STREAM_GLOBAL, rank)
    torch.manual_seed(value)
    np.random.seed(value % 2**32)
    random.seed(value)


@dataclass(frozen=True)
class EpochPlan:
    """The global visiting order of one epoch and the jitter of each position in it.

    ``order``: int64 ``(steps · batch_size,)`` pair indices (a permutation, the incomplete last batch dropped);
    ``jitter``: :class:`JitterParams` of the same length, on CPU. Step ``s`` trains positions
    ``[s·B, (s+1)·B)``; rank ``r`` of ``R`` takes the ``r``-th of ``R`` equal chunks of that range.
    """

    order: np.ndarray
    jitter: JitterParams


def epoch_plan(cfg: TrainConfig, epoch: int, pair_count: int) -> EpochPlan:
    """Draw :class:`EpochPlan` for ``epoch`` from a generator seeded by ``(cfg.seed, epoch)`` alone."""
    generator = torch.Generator().manual_seed(derive_seed(cfg.seed, epoch, _STREAM_DATA))
    used = pair_count // cfg.batch_size * cfg.batch_size
    order = torch.randperm(pair_count, generator=generator)[:used]
    jitter = draw_jitter(used, cfg.model.image_size, generator, jitter=cfg.jitter, flip=cfg.flip)
    return EpochPlan(order.numpy(), jitter)


@dataclass(frozen=True)
class ProgressInfo:
    """Training progress at a log step (every ``log_every_steps`` optimizer steps), rank 0.

    Losses are means over the steps since the previous report and over all ranks: ``loss_g`` is G's
    adversarial term, ``loss_l1`` the unweighted L1, ``loss_d`` D's (halved) loss.
    """

    epoch: int
    total_epochs: int
    step_in_epoch: int
    steps_per_epoch: int
    global_step: int
    loss_g: float
    loss_d: float
    loss_l1: float
    lr: float
    it_per_s: float
    img_per_s: float


@dataclass(frozen=True)
class EpochReport:
    """One finished epoch, passed to ``on_epoch_end`` on rank 0 before its checkpoint is written.

    Losses are epoch means over all ranks (as in :class:`ProgressInfo`); ``img_per_s`` counts the images of
    all ranks per wall-clock second of the training steps (``seconds``). ``generator`` is the unwrapped
    network, in train mode: put it in eval mode to evaluate (``set_inference_dropout``) and back with
    ``.train()``. ``sample_grid`` is the epoch's PNG, or None without sample pairs.
    """

    epoch: int
    loss_g: float
    loss_d: float
    loss_l1: float
    lr: float
    img_per_s: float
    seconds: float
    generator: nn.Module
    sample_grid: Path | None

    def metrics(self) -> dict[str, float | int]:
        """The scalar fields as a dict (the start of each ``history`` entry)."""
        # Not dataclasses.asdict: it would deep-copy the generator.
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("generator", "sample_grid")}


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` did. ``history`` (complete on rank 0) has one dict per finished epoch, resumed ones
    included: the epoch metrics merged with what ``on_epoch_end`` returned. ``fresh_start_reason`` says why an
    existing checkpoint was not resumed. ``generator``/``discriminator`` are the final unwrapped networks."""

    generator_path: Path
    checkpoint_path: Path
    history: list[dict[str, Any]]
    resumed_from_epoch: int
    epochs_run: int
    fresh_start_reason: str | None
    generator: nn.Module
    discriminator: nn.Module


class TrainingInterrupted(TrainingError):
    """SIGTERM or SIGINT stopped training; the message names the checkpoint that resumes it."""


class _StopRequest:
    """Turns the first SIGTERM/SIGINT into a flag read at step boundaries; a second one interrupts at once.

    Handlers are only installed from the main thread (Python's rule) and restored on exit.
    """

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal_name is not None:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name


@contextlib.contextmanager
def _backend_settings(cfg: TrainConfig, device: torch.device) -> Iterator[None]:
    """Set deterministic kernels and cudnn autotuning for the run; restore the previous settings after it."""
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
        torch.get_float32_matmul_precision(),
    )
    torch.use_deterministic_algorithms(cfg.deterministic)
    if device.type == "cuda":
        if cfg.deterministic:
            # Deterministic cuBLAS needs this before its first use in the process (no effect after).
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = not cfg.deterministic
        torch.backends.cudnn.deterministic = cfg.deterministic
        torch.set_float32_matmul_precision("highest" if cfg.deterministic else "high")
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = previous[1], previous[2]
        torch.set_float32_matmul_precision(previous[3])


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for ``mode`` on ``device``: None (fp32) on CPU and for "off"; "auto" prefers bf16."""
    if device.type != "cuda" or mode == "off":
        if device.type != "cuda" and mode in ("bf16", "fp16"):
            log.warning("amp %s applies to CUDA only; training in fp32 on %s", mode, device)
        return None
    bf16_ok = torch.cuda.is_bf16_supported()
    if mode == "bf16" and not bf16_ok:
        raise ConfigError(f"amp bf16: {torch.cuda.get_device_name(device)} has no bf16; use amp: fp16 or auto")
    if mode == "bf16" or (mode == "auto" and bf16_ok):
        return torch.bfloat16
    return torch.float16


class _PairScores(nn.Module):
    """D on the real and on the generated pair in one forward, so DDP sees one forward per backward."""

    def __init__(self, discriminator: nn.Module) -> None:
        super().__init__()
        self.discriminator = discriminator

    def forward(self, a: torch.Tensor, real_b: torch.Tensor, fake_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(N, 1, h, w)`` for ``(a, real_b)`` and for ``(a, fake_b)`` (two batches: separate BN statistics)."""
        return self.discriminator(a, real_b), self.discriminator(a, fake_b)


@dataclass
class _RunState:
    """Progress that a checkpoint carries: finished epochs, optimizer steps, their LRs and metric history."""

    epoch: int = 0
    step: int = 0
    lrs: list[float] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class _EpochStats:
    """Epoch means over all ranks (loss_g, loss_d, loss_l1), images trained (all ranks), the steps' wall time
    and whether to stop after this epoch."""

    losses: list[float]
    images: int
    seconds: float
    stop: bool


class _Trainer:
    """The networks (raw and wrapped for DDP/compile), optimizers, scaler and the data feed of one rank."""

    def __init__(self, cfg: TrainConfig, pairs: np.ndarray, info: DistInfo) -> None:
        self.cfg, self.pairs, self.info, self.device = cfg, pairs, info, info.device
        self.cuda = self.device.type == "cuda"
        self.amp_dtype = resolve_amp(cfg.amp, self.device)
        self.memory_format = torch.channels_last if self.cuda and cfg.channels_last else torch.contiguous_format
        self.rank_batch = cfg.batch_size // info.world_size
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
        """``torch.compile(module)`` when asked for and on CUDA, else ``module``."""
        return torch.compile(module) if self.cfg.compile and self.cuda else module

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
        """Inverse of :meth:`state_dict` (the scaler state only when both sides use one)."""
        self.g_raw.load_state_dict(state["generator"])
        self.d_raw.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        if state["scaler"] and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])

    def batch(self, plan: EpochPlan, jitter: JitterParams, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of step ``step``: (input, target), float ``(b, 3, H, W)`` in [-1, 1] on the device.

        ``jitter`` is ``plan.jitter`` already on the device.
        """
        start = step * self.cfg.batch_size + self.info.rank * self.rank_batch
        positions = slice(start, start + self.rank_batch)
        host = torch.empty((self.rank_batch, *self.pairs.shape[1:]), dtype=torch.uint8, pin_memory=self.cuda)
        # Gather straight from the memory map into the (pinned) buffer; "clip" avoids numpy's extra copy.
        np.take(self.pairs, plan.order[positions], axis=0, out=host.numpy(), mode="clip")
        a, b = pairs_to_float(host.to(self.device, non_blocking=True))
        if self.cfg.jitter or self.cfg.flip:
            a, b = jitter_pairs(a, b, jitter.select(positions), jitter=self.cfg.jitter, mask_input=self.cfg.mask_input)
        if self.cfg.direction == "BtoA":
            a, b = b, a
        return a.contiguous(memory_format=self.memory_format), b.contiguous(memory_format=self.memory_format)

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

    @torch.no_grad()
    def sample_grid(self, pairs: np.ndarray) -> np.ndarray:
        """Rows ``input | output | target`` for ``pairs`` (uint8 ``(N, 2, H, W, 3)``), as uint8 ``(N·H, 3·W, 3)``.

        The generator runs as at test time (eval mode, dropout on) with dropout masks seeded the same every
        epoch, inside a forked RNG so that training randomness is untouched; it is back in train mode after.
        """
        devices = [self.device.index or 0] if self.cuda else []
        with torch.random.fork_rng(devices=devices), self.autocast():
            torch.manual_seed(derive_seed(self.cfg.seed, _STREAM_SAMPLES))
            a, b = pairs_to_float(torch.from_numpy(np.ascontiguousarray(pairs)).to(self.device))
            if self.cfg.direction == "BtoA":
                a, b = b, a
            set_inference_dropout(self.g_raw, True)
            try:
                fake = self.g_raw(a.contiguous(memory_format=self.memory_format))
            finally:
                self.g_raw.train()
        return grid_image([a, fake, b])


def grid_image(columns: list[torch.Tensor]) -> np.ndarray:
    """Tile ``k`` same-shape ``(N, 3, H, W)`` batches in [-1, 1] side by side: uint8 ``(N·H, k·W, 3)``."""
    rows = torch.cat([column.float() for column in columns], dim=3)
    image = rows.permute(0, 2, 3, 1).reshape(-1, rows.shape[3], 3)
    return ((image + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu().numpy()


def _write_png(path: Path, image: np.ndarray) -> None:
    """Write uint8 ``(H, W, 3)`` ``image`` as a PNG, atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def _check_pairs(pairs: np.ndarray, cfg: TrainConfig, name: str, min_count: int) -> None:
    """Raise DataError unless ``pairs`` is a uint8 ``(N ≥ min_count, 2, H, W, 3)`` array at the model's size."""
    if not (isinstance(pairs, np.ndarray) and pairs.dtype == np.uint8 and pairs.ndim == 5
            and pairs.shape[1] == 2 and pairs.shape[4] == 3):
        got = f"{pairs.dtype} {pairs.shape}" if isinstance(pairs, np.ndarray) else type(pairs).__name__
        raise DataError(f"{name}: expected a uint8 (N, 2, H, W, 3) pairs array, got {got}")
    if tuple(pairs.shape[2:4]) != cfg.model.image_size:
        height, width = cfg.model.image_size
        raise DataError(
            f"{name} are {pairs.shape[2]}x{pairs.shape[3]} but the model is built for {height}x{width}: "
            "prepare the data at the same image_size"
        )
    if len(pairs) < min_count:
        raise DataError(f"{name}: {len(pairs)} pairs are fewer than batch_size {min_count}; lower batch_size")


def resume_mismatch(checkpoint: Mapping[str, Any], cfg: TrainConfig, fingerprint: str) -> str | None:
    """Why ``checkpoint`` cannot continue into ``cfg`` on this data, or None when it can."""
    if checkpoint["config_hash"] != config_hash(cfg):
        old, new = flatten_keys(checkpoint["config"]), flatten_keys(cfg.to_dict())
        changed = sorted(
            key for key in old.keys() | new.keys()
            if key.split(".")[0] not in NON_WEIGHT_FIELDS and old.get(key) != new.get(key)
        )
        return f"its config differs in {', '.join(changed) or 'an unknown field'}"
    if checkpoint["data_fingerprint"] != fingerprint:
        return "it was trained on different pairs"
    done = checkpoint["epoch"]
    if done > cfg.total_epochs:
        return f"it has finished {done} epochs, more than the {cfg.total_epochs} asked for"
    lrs = [lr_at_epoch(epoch, cfg.epochs, cfg.epochs_decay, cfg.lr) for epoch in range(1, done + 1)]
    if lrs != list(checkpoint["lrs"]):
        return "its finished epochs used other learning rates than epochs/epochs_decay now give"
    return None


def _resume(trainer: _Trainer, cfg: TrainConfig, path: Path, fingerprint: str) -> tuple[_RunState, str | None]:
    """Load ``path`` into ``trainer`` when it continues this run; else a fresh state and the reason why not."""
    checkpoint = load_checkpoint(path, trainer.device)
    if checkpoint is None:
        return _RunState(), None
    reason = resume_mismatch(checkpoint, cfg, fingerprint)
    if reason is not None:
        return _RunState(), f"{path}: not resumed because {reason}; training from scratch (replaced after epoch 1)"
    trainer.load_state_dict(checkpoint)
    state = _RunState(checkpoint["epoch"], checkpoint["step"], list(checkpoint["lrs"]), list(checkpoint["history"]))
    return state, None


def _last_good(path: Path, state: _RunState) -> str:
    """How the last good checkpoint is named in error messages."""
    return f"{path} (epoch {state.epoch})" if state.epoch else "none (no epoch finished)"


def _check_finite_losses(losses: list[float], where: str, last_good: str) -> None:
    """Raise TrainingError when a loss mean is NaN or infinite."""
    if not all(math.isfinite(value) for value in losses):
        loss_g, loss_d, loss_l1 = losses
        raise TrainingError(
            f"loss became non-finite at {where} (loss_g={loss_g}, loss_d={loss_d}, loss_l1={loss_l1}); the last "
            f"good checkpoint is {last_good}; lower lr or set amp: off"
        )


def _check_finite_weights(modules: list[nn.Module], epoch: int, last_good: str) -> None:
    """Raise TrainingError when a floating-point parameter or buffer of ``modules`` holds NaN or inf."""
    tensors = [t for module in modules for t in module.state_dict().values() if t.is_floating_point()]
    if not bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()):
        raise TrainingError(
            f"weights became non-finite in epoch {epoch}; the last good checkpoint is {last_good}; "
            "lower lr or set amp: off"
        )


def _history_entry(report: EpochReport, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """The epoch metrics merged with the callback's dict (str keys, scalar values only: it goes in checkpoints)."""
    entry: dict[str, Any] = report.metrics()
    for key, value in (extra or {}).items():
        if not isinstance(key, str) or not (value is None or isinstance(value, (bool, int, float, str))):
            raise TrainingError(f"on_epoch_end returned {key!r}: {value!r}; return a dict of str → number/str")
        entry[key] = value
    return entry


def _run_epoch(
    trainer: _Trainer,
    epoch: int,
    state: _RunState,
    stop: _StopRequest,
    progress: Callable[[ProgressInfo], None] | None,
    last_good: str,
) -> _EpochStats:
    """Train one epoch (``state.step`` advances); check losses and the stop flag at log steps and at the end."""
    cfg, info = trainer.cfg, trainer.info
    plan = epoch_plan(cfg, epoch, len(trainer.pairs))
    jitter = plan.jitter.to(trainer.device)
    steps = len(plan.order) // cfg.batch_size
    epoch_sums = torch.zeros(3, device=trainer.device)
    interval_sums = torch.zeros(3, device=trainer.device)
    started = interval_start = time.perf_counter()
    interval_steps = 0
    for step_in_epoch in range(1, steps + 1):
        losses = trainer.step(*trainer.batch(plan, jitter, step_in_epoch - 1))
        epoch_sums += losses
        interval_sums += losses
        interval_steps += 1
        state.step += 1
        if state.step % cfg.log_every_steps == 0:
            means, stop_now = trainer.mean_over_ranks(interval_sums, interval_steps, stop.signal_name is not None)
            _check_finite_losses(means, f"epoch {epoch} step {step_in_epoch}", last_good)
            now = time.perf_counter()
            if progress is not None and info.is_main:
                rate = interval_steps / (now - interval_start)
                progress(ProgressInfo(epoch, cfg.total_epochs, step_in_epoch, steps, state.step, *means,
                                      trainer.opt_g.param_groups[0]["lr"], rate, rate * cfg.batch_size))
            interval_sums.zero_()
            interval_start, interval_steps = now, 0
        else:
            # Without other ranks to agree with, a signal can stop at any step.
            stop_now = info.world_size == 1 and stop.signal_name is not None
        # A stop at the last step waits for the end of the epoch, which writes a checkpoint first.
        if stop_now and step_in_epoch < steps:
            raise TrainingInterrupted(
                f"training stopped by {stop.signal_name or 'a signal on another rank'} in epoch {epoch}; the last "
                f"checkpoint is {last_good}: run the same command again to resume from it"
            )
    if trainer.cuda:
        torch.cuda.synchronize(trainer.device)
    seconds = time.perf_counter() - started
    means, stop_now = trainer.mean_over_ranks(epoch_sums, steps, stop.signal_name is not None)
    _check_finite_losses(means, f"the end of epoch {epoch}", last_good)
    return _EpochStats(means, len(plan.order), seconds, stop_now)


def _finish_epoch(
    trainer: _Trainer,
    epoch: int,
    stats: _EpochStats,
    sample_pairs: np.ndarray,
    out_dir: Path,
    on_epoch_end: Callable[[EpochReport], Mapping[str, Any] | None] | None,
) -> dict[str, Any]:
    """Rank 0: write the sample grid, call ``on_epoch_end`` and return the epoch's history entry."""
    grid_path = None
    if len(sample_pairs):
        grid_path = out_dir / SAMPLES_DIR / f"epoch_{epoch:03d}.png"
        _write_png(grid_path, trainer.sample_grid(sample_pairs))
    lr = trainer.opt_g.param_groups[0]["lr"]
    report = EpochReport(
        epoch, *stats.losses, lr, stats.images / stats.seconds, stats.seconds, trainer.g_raw, grid_path
    )
    extra = on_epoch_end(report) if on_epoch_end is not None else None
    return _history_entry(report, extra)


def _checkpoint(trainer: _Trainer, state: _RunState, fingerprint: str) -> dict[str, Any]:
    """The ``checkpoint.pt`` content after ``state.epoch`` finished epochs."""
    return {
        "format_version": FORMAT_VERSION,
        "config": trainer.cfg.to_dict(),
        "config_hash": config_hash(trainer.cfg),
        "data_fingerprint": fingerprint,
        "epoch": state.epoch,
        "step": state.step,
        "lrs": state.lrs,
        "history": state.history,
        **trainer.state_dict(),
    }


def train(
    cfg: TrainConfig,
    train_pairs: np.ndarray,
    sample_pairs: np.ndarray,
    out_dir: Path,
    *,
    on_epoch_end: Callable[[EpochReport], Mapping[str, Any] | None] | None = None,
    progress: Callable[[ProgressInfo], None] | None = None,
    device: torch.device | None = None,
) -> TrainResult:
    """Train (or resume training) a pix2pix generator on ``train_pairs``; write the files to ``out_dir``.

    ``train_pairs`` and ``sample_pairs`` are uint8 ``(N, 2, H, W, 3)`` arrays (memory maps from
    :func:`pix2pix.store.open_pairs` are read batch by batch); the first ``cfg.sample_count`` sample pairs
    make the per-epoch grid. Under ``torchrun`` call :func:`pix2pix.distributed.init_from_env` first and pass
    its device; every rank calls ``train``. ``progress`` (at log steps) and ``on_epoch_end`` (after each epoch,
    before its checkpoint; the dict it returns joins the epoch's ``history`` entry) run on rank 0 only, so
    they must not use collective operations or run the generator in train mode. Seeds the global RNGs.

    Raises TrainingError on non-finite losses or weights (the previous checkpoint stays), and
    TrainingInterrupted on SIGTERM/SIGINT; DataError/ConfigError on unusable inputs.
    """
    info = distributed.current(device)
    out_dir = Path(out_dir)
    checkpoint_path, generator_path = out_dir / CHECKPOINT_FILE, out_dir / GENERATOR_FILE
    _check(cfg.batch_size % info.world_size == 0,
           f"batch_size {cfg.batch_size} does not split evenly over {info.world_size} processes")
    _check_pairs(train_pairs, cfg, "train_pairs", cfg.batch_size)
    _check_pairs(sample_pairs, cfg, "sample_pairs", 0)
    sample_pairs = sample_pairs[: cfg.sample_count]
    fingerprint = data_fingerprint(train_pairs)
    with _backend_settings(cfg, info.device), _StopRequest() as stop:
        trainer = _Trainer(cfg, train_pairs, info)
        state, fresh_start_reason = _resume(trainer, cfg, checkpoint_path, fingerprint)
        if fresh_start_reason is not None and info.is_main:
            log.warning(fresh_start_reason)
        resumed_from = state.epoch
        for epoch in range(state.epoch + 1, cfg.total_epochs + 1):
            lr = lr_at_epoch(epoch, cfg.epochs, cfg.epochs_decay, cfg.lr)
            trainer.set_lr(lr)
            seed_global_rngs(cfg.seed, epoch, info.rank)
            last_good = _last_good(checkpoint_path, state)
            stats = _run_epoch(trainer, epoch, state, stop, progress, last_good)
            # Diverged weights stop the run before the sample grid and the callback see them.
            _check_finite_weights([trainer.g_raw, trainer.d_raw], epoch, last_good)
            state.epoch = epoch
            state.lrs.append(lr)
            if info.is_main:
                state.history.append(_finish_epoch(trainer, epoch, stats, sample_pairs, out_dir, on_epoch_end))
                # The callback held the generator: check again so a good checkpoint is never replaced by NaNs.
                _check_finite_weights([trainer.g_raw, trainer.d_raw], epoch, last_good)
                save_atomic(_checkpoint(trainer, state, fingerprint), checkpoint_path)
            if stats.stop:
                raise TrainingInterrupted(
                    f"training stopped by {stop.signal_name or 'a signal on another rank'} after epoch {epoch}; "
                    f"run the same command again to resume from {checkpoint_path}"
                )
        if info.is_main:
            save_atomic(generator_payload(trainer.g_raw, cfg.model, cfg.direction, state.epoch), generator_path)
    return TrainResult(
        generator_path, checkpoint_path, state.history, resumed_from, state.epoch - resumed_from,
        fresh_start_reason, trainer.g_raw, trainer.d_raw,
    )
