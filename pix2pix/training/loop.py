"""The pix2pix epoch loop: one code path for CPU, one GPU and many GPUs (DDP under ``torchrun``).

Per batch: one discriminator step (real pair vs. generated pair), then one generator step (fool D, plus
``lambda_l1`` · L1 to the target), Adam for both. The learning rate is constant for ``epochs`` epochs, then
decays linearly towards 0 over ``epochs_decay`` more (:func:`lr_at_epoch`).

The per-rank step machinery is :mod:`pix2pix.training.trainer`; the schedule and seeding,
:mod:`pix2pix.training.schedule`.

Randomness is reseeded at the start of every epoch (:mod:`pix2pix.training.schedule`), so a checkpoint needs
no RNG state and resuming reseeds exactly as an uninterrupted run does, on any device. With
``deterministic=True`` on CPU a resumed run is bit-identical to a straight one.

Files (rank 0 only), in ``out_dir``: ``checkpoint.pt`` after every epoch, ``samples/epoch_XXX.png`` per epoch,
``generator.pt`` at the end (formats in :mod:`pix2pix.training.checkpoint`). A run resumes from ``checkpoint.pt`` when
its weight-relevant config (:func:`config_hash`), its data and the learning rates of its finished epochs match;
otherwise it starts from scratch and says why (a ``logging`` warning and :attr:`TrainResult.fresh_start_reason`).
SIGTERM/SIGINT stop training at the next step boundary without writing a half-epoch: the interrupted epoch
restarts from the last end-of-epoch checkpoint (:class:`TrainingInterrupted`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
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

from pix2pix.atomic import atomic_path
from pix2pix.data.store import Pairs, PairsView
from pix2pix.devices import CUBLAS_WORKSPACE_VARIABLE, DETERMINISTIC_CUBLAS_WORKSPACE, request_deterministic_cublas
from pix2pix.errors import ConfigError, DataError, TrainingError
from pix2pix.keys import flatten_keys
from pix2pix.training import distributed
from pix2pix.training.checkpoint import (
    CHECKPOINT_FILE,
    FORMAT_VERSION,
    GENERATOR_FILE,
    load_checkpoint,
    save_atomic,
)
from pix2pix.training.generator_file import generator_payload
from pix2pix.training.config import NON_WEIGHT_FIELDS, TrainConfig, config_hash
from pix2pix.training.schedule import epoch_plan, lr_at_epoch, seed_global_rngs
from pix2pix.training.trainer import RankTrainer

log = logging.getLogger(__name__)

SAMPLES_DIR = "samples"


# Pairs hashed into the data fingerprint: enough to notice another data set, cheap on a 20 GB memory map.
FINGERPRINT_PAIRS = 64


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
    all ranks per wall-clock second of the training steps (``seconds``). Epoch 0 is the untrained generator
    (``train(evaluate_untrained=True)``): it has no losses, rate, time or learning rate (all None).
    ``generator`` is the unwrapped network, in train mode: evaluate it through
    :func:`~pix2pix.training.model.inference_view`, which leaves it so. ``sample_grid`` is the epoch's PNG, or None
    without sample pairs.
    """

    epoch: int
    loss_g: float | None
    loss_d: float | None
    loss_l1: float | None
    lr: float | None
    img_per_s: float | None
    seconds: float | None
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


def check_deterministic_cublas(cuda_initialized: bool) -> None:
    """Make cuBLAS deterministic, or raise ConfigError when it is too late: CUDA already ran without the setting.

    cuBLAS reads ``CUBLAS_WORKSPACE_CONFIG`` at its first use only; setting it afterwards does nothing and the
    first deterministic matmul fails deep inside the step. Callers that touch CUDA before :func:`train`
    (loading an Inception network, say) call :func:`pix2pix.devices.request_deterministic_cublas` first.
    """
    if CUBLAS_WORKSPACE_VARIABLE in os.environ:
        return
    if cuda_initialized:
        raise ConfigError(
            f"deterministic training on CUDA needs {CUBLAS_WORKSPACE_VARIABLE} set before the first CUDA call of the "
            "process, and CUDA already ran: call pix2pix.devices.request_deterministic_cublas() at start-up or "
            f"export {CUBLAS_WORKSPACE_VARIABLE}={DETERMINISTIC_CUBLAS_WORKSPACE}"
        )
    request_deterministic_cublas()


@contextlib.contextmanager
def _backend_settings(cfg: TrainConfig, device: torch.device) -> Iterator[None]:
    """Set deterministic kernels and cudnn autotuning for the run; restore the previous settings after it."""
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
        torch.get_float32_matmul_precision(),
    )
    if device.type == "cuda" and cfg.deterministic:
        check_deterministic_cublas(torch.cuda.is_initialized())
    torch.use_deterministic_algorithms(cfg.deterministic)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not cfg.deterministic
        torch.backends.cudnn.deterministic = cfg.deterministic
        torch.set_float32_matmul_precision("highest" if cfg.deterministic else "high")
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = previous[1], previous[2]
        torch.set_float32_matmul_precision(previous[3])


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


def data_fingerprint(pairs: Pairs) -> str:
    """sha256 (hex) of the shape of ``pairs`` and of up to 64 evenly spaced pairs; tells data sets apart cheaply."""
    digest = hashlib.sha256(repr(tuple(pairs.shape)).encode())
    for index in np.unique(np.linspace(0, len(pairs) - 1, min(len(pairs), FINGERPRINT_PAIRS)).round().astype(int)):
        digest.update(np.ascontiguousarray(pairs[index]).tobytes())
    return digest.hexdigest()


def _write_png(path: Path, image: np.ndarray) -> None:
    """Write uint8 ``(H, W, 3)`` ``image`` as a PNG, atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def _check_pairs(pairs: Pairs, cfg: TrainConfig, name: str, min_count: int) -> None:
    """Raise DataError unless ``pairs`` is a uint8 ``(N ≥ min_count, 2, H, W, 3)`` array at the model's size."""
    if not (isinstance(pairs, (np.ndarray, PairsView)) and pairs.dtype == np.uint8 and pairs.ndim == 5
            and pairs.shape[1] == 2 and pairs.shape[4] == 3):
        got = f"{pairs.dtype} {pairs.shape}" if isinstance(pairs, (np.ndarray, PairsView)) else type(pairs).__name__
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


def _resume(trainer: RankTrainer, cfg: TrainConfig, path: Path, fingerprint: str) -> tuple[_RunState, str | None]:
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
    trainer: RankTrainer,
    epoch: int,
    state: _RunState,
    stop: _StopRequest,
    progress: Callable[[ProgressInfo], None] | None,
    last_good: str,
) -> _EpochStats:
    """Train one epoch (``state.step`` advances); check losses and the stop flag at log steps and at the end."""
    cfg, info = trainer.cfg, trainer.info
    plan = epoch_plan(cfg, epoch, len(trainer.pairs))
    steps = len(plan.order) // cfg.batch_size
    epoch_sums = torch.zeros(3, device=trainer.device)
    interval_sums = torch.zeros(3, device=trainer.device)
    started = interval_start = time.perf_counter()
    interval_steps = 0
    # The next batch is gathered in the background while this one trains; closing stops that.
    with contextlib.closing(trainer.batches(plan)) as batches:
        for step_in_epoch in range(1, steps + 1):
            losses = trainer.step(*next(batches))
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
    trainer: RankTrainer,
    epoch: int,
    stats: _EpochStats | None,
    sample_pairs: np.ndarray,
    out_dir: Path,
    on_epoch_end: Callable[[EpochReport], Mapping[str, Any] | None] | None,
) -> dict[str, Any]:
    """Rank 0: write the sample grid, call ``on_epoch_end`` and return the epoch's history entry.

    ``stats`` None reports the untrained generator as epoch 0.
    """
    grid_path = None
    if len(sample_pairs):
        grid_path = out_dir / SAMPLES_DIR / f"epoch_{epoch:03d}.png"
        _write_png(grid_path, trainer.sample_grid(sample_pairs))
    if stats is None:
        report = EpochReport(epoch, None, None, None, None, None, None, trainer.g_raw, grid_path)
    else:
        lr = trainer.opt_g.param_groups[0]["lr"]
        report = EpochReport(
            epoch, *stats.losses, lr, stats.images / stats.seconds, stats.seconds, trainer.g_raw, grid_path
        )
    extra = on_epoch_end(report) if on_epoch_end is not None else None
    return _history_entry(report, extra)


def _checkpoint(trainer: RankTrainer, state: _RunState, fingerprint: str) -> dict[str, Any]:
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
    train_pairs: Pairs,
    sample_pairs: Pairs,
    out_dir: Path,
    *,
    on_epoch_end: Callable[[EpochReport], Mapping[str, Any] | None] | None = None,
    progress: Callable[[ProgressInfo], None] | None = None,
    device: torch.device | None = None,
    evaluate_untrained: bool = False,
) -> TrainResult:
    """Train (or resume training) a pix2pix generator on ``train_pairs``; write the files to ``out_dir``.

    ``train_pairs`` and ``sample_pairs`` are uint8 ``(N, 2, H, W, 3)`` arrays or split views (memory maps and
    views from :func:`pix2pix.data.store.open_pairs` are read batch by batch); the first ``cfg.sample_count`` sample pairs
    make the per-epoch grid. Under ``torchrun`` call :func:`pix2pix.training.distributed.init_from_env` first and pass
    its device; every rank calls ``train``. ``progress`` (at log steps) and ``on_epoch_end`` (after each epoch,
    before its checkpoint; the dict it returns joins the epoch's ``history`` entry) run on rank 0 only, so
    they must not use collective operations (``inference_view`` has none). ``evaluate_untrained``: a run that
    starts from scratch first reports the initial generator as epoch 0 (sample grid, ``on_epoch_end``, a
    history entry), so its curves begin where training began; the weights trained are the same either way.
    Seeds the global RNGs.

    Raises TrainingError on non-finite losses or weights (the previous checkpoint stays), and
    TrainingInterrupted on SIGTERM/SIGINT; DataError/ConfigError on unusable inputs.
    """
    info = distributed.current(device)
    out_dir = Path(out_dir)
    checkpoint_path, generator_path = out_dir / CHECKPOINT_FILE, out_dir / GENERATOR_FILE
    if cfg.batch_size % info.world_size:
        raise ConfigError(f"batch_size {cfg.batch_size} does not split evenly over {info.world_size} processes")
    _check_pairs(train_pairs, cfg, "train_pairs", cfg.batch_size)
    _check_pairs(sample_pairs, cfg, "sample_pairs", 0)
    sample_pairs = sample_pairs[: cfg.sample_count]
    fingerprint = data_fingerprint(train_pairs)
    with _backend_settings(cfg, info.device), _StopRequest() as stop:
        trainer = RankTrainer(cfg, train_pairs, info)
        state, fresh_start_reason = _resume(trainer, cfg, checkpoint_path, fingerprint)
        if fresh_start_reason is not None and info.is_main:
            log.warning(fresh_start_reason)
        resumed_from = state.epoch
        if evaluate_untrained and resumed_from == 0 and info.is_main:
            state.history.append(_finish_epoch(trainer, 0, None, sample_pairs, out_dir, on_epoch_end))
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
            save_atomic(generator_payload(trainer.g_raw, cfg.model, cfg.direction, state.epoch, cfg.inference, None), generator_path)
    return TrainResult(
        generator_path, checkpoint_path, state.history, resumed_from, state.epoch - resumed_from,
        fresh_start_reason, trainer.g_raw, trainer.d_raw,
    )
