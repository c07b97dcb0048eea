"""The pix2pix epoch loop: one code path for CPU, one GPU and many GPUs (DDP under ``torchrun``).

Per batch: one discriminator step (real pair vs. generated pair), then one generator step (fool D, plus
``lambda_l1`` · L1 to the target), Adam for both. The learning rate is constant for ``epochs`` epochs, then
decays linearly towards 0 over ``epochs_decay`` more (:func:`~pix2pix.training.schedule.lr_at_epoch`).

Training computes weights and nothing else: it writes, in ``out_dir`` (rank 0), generator snapshots of the
epochs to score (:mod:`pix2pix.training.snapshots`) and checkpoints (:mod:`pix2pix.training.checkpoint_store`).
Scoring them is :mod:`pix2pix.evaluation`'s job, so that changing how a run is scored never trains again.

Randomness is reseeded at every step (:mod:`pix2pix.training.schedule`), so a checkpoint needs no RNG state: a
run resumed at an epoch's end or inside one trains exactly what an uninterrupted one trains (bit for bit on CPU
and with ``deterministic=True`` on GPU). Whether to resume is :func:`pix2pix.training.resume.plan_resume`'s call;
every rank must agree on it. SIGTERM/SIGINT stop training at the next step boundary, after a checkpoint when
mid-epoch checkpoints are on (:class:`TrainingInterrupted`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pix2pix.atomic import remove_dead_temporaries
from pix2pix.data.store import Pairs, PairsView
from pix2pix.errors import ConfigError, DataError, TrainingError
from pix2pix.training import distributed
from pix2pix.training.checkpoint import CHECKPOINT_FORMAT_VERSION
from pix2pix.training.checkpoint_store import CHECKPOINTS_DIR, discard_run, read_latest, write_checkpoint
from pix2pix.training.config import TrainConfig, config_hash
from pix2pix.training.resume import ResumePlan, data_fingerprint, plan_resume, training_code_hash
from pix2pix.training.runtime import StopRequest, backend_settings
from pix2pix.training.schedule import epoch_plan, lr_at_epoch, seed_global_rngs
from pix2pix.training.snapshots import SNAPSHOTS_DIR, is_snapshot_epoch, snapshot_file, write_snapshot
from pix2pix.training.trainer import RankTrainer

log = logging.getLogger(__name__)

# What each finished epoch adds to the history (checkpoints, snapshots): the numbers that repeat from run to run
# (LOSS_COLUMNS, metrics/losses.tsv) and the wall-clock ones (TIMING_COLUMNS, metrics/timings.tsv).
LOSS_COLUMNS = ("epoch", "loss_g", "loss_d", "loss_l1", "lr")
TIMING_COLUMNS = ("epoch", "img_per_s", "seconds")
HISTORY_KEYS = LOSS_COLUMNS + TIMING_COLUMNS[1:]


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
class TrainResult:
    """What :func:`train` did. ``history`` (complete on rank 0) has one dict of :data:`HISTORY_KEYS` per finished
    epoch, resumed ones included. ``snapshots`` are the generator files of this run by epoch (rank 0),
    ``generator_path`` the last. ``fresh_start_reason`` says why an existing checkpoint was set aside, and
    ``discarded_to`` where it went. ``generator``/``discriminator`` are the final unwrapped networks."""

    generator_path: Path
    snapshots: dict[int, Path]
    history: list[dict[str, Any]]
    resumed_from_epoch: int
    epochs_run: int
    fresh_start_reason: str | None
    discarded_to: Path | None
    generator: nn.Module
    discriminator: nn.Module


class TrainingInterrupted(TrainingError):
    """SIGTERM or SIGINT stopped training; the message names the checkpoint that resumes it."""


@dataclass
class _RunState:
    """Progress that a checkpoint carries: the epoch (finished, or under way with ``step_in_epoch`` steps done),
    the optimizer steps, the loss sums of the epoch under way, the LRs of finished epochs and their history."""

    epoch: int = 0
    step_in_epoch: int = 0
    step: int = 0
    epoch_sums: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    lrs: list[float] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    last_checkpoint: Path | None = None

    @classmethod
    def of(cls, checkpoint: Mapping[str, Any], path: Path) -> _RunState:
        return cls(
            checkpoint["epoch"], checkpoint["step_in_epoch"], checkpoint["step"], list(checkpoint["epoch_sums"]),
            list(checkpoint["lrs"]), list(checkpoint["history"]), path,
        )

    def last_good(self) -> str:
        """How the last good checkpoint is named in error messages."""
        return str(self.last_checkpoint) if self.last_checkpoint else "none (no checkpoint written yet)"


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


class _Run:
    """One training run on one rank: the trainer, the state a checkpoint carries and the files rank 0 writes."""

    def __init__(self, trainer: RankTrainer, state: _RunState, out_dir: Path, fingerprint: str,
                 description: Mapping[str, Any] | None) -> None:
        self.trainer, self.cfg, self.info = trainer, trainer.cfg, trainer.info
        self.state, self.out_dir, self.fingerprint, self.description = state, out_dir, fingerprint, description
        self.code_hash = training_code_hash()

    def checkpoint(self) -> None:
        """Write the current state as a checkpoint (rank 0; the others have just agreed on the loss sums)."""
        state = self.state
        if self.info.is_main:
            payload = {
                "format_version": CHECKPOINT_FORMAT_VERSION, "config": self.cfg.to_dict(),
                "config_hash": config_hash(self.cfg), "data_fingerprint": self.fingerprint,
                "training_code": self.code_hash, "epoch": state.epoch, "step_in_epoch": state.step_in_epoch,
                "step": state.step, "epoch_sums": list(state.epoch_sums), "lrs": state.lrs, "history": state.history,
                **self.trainer.state_dict(),
            }
            state.last_checkpoint = write_checkpoint(payload, self.out_dir / CHECKPOINTS_DIR, self.cfg.keep_checkpoints)

    def snapshot(self, epoch: int, stats: Mapping[str, Any] | None) -> Path:
        return write_snapshot(
            self.out_dir / SNAPSHOTS_DIR, self.trainer.g_raw, self.cfg, epoch, stats, self.fingerprint, self.description
        )

    def run_epoch(
        self, epoch: int, stop: StopRequest, progress: Callable[[ProgressInfo], None] | None
    ) -> tuple[dict[str, Any], bool]:
        """Train ``epoch`` from ``state.step_in_epoch`` on; return its history entry and whether a rank was asked to
        stop (all ranks agree on both)."""
        cfg, info, trainer, state = self.cfg, self.info, self.trainer, self.state
        plan = epoch_plan(cfg, epoch, len(trainer.pairs))
        steps = len(plan.order) // cfg.batch_size
        first = state.step_in_epoch
        # Rank 0 carries the sums of the steps done before a mid-epoch resume (they were summed over ranks).
        sums = torch.tensor(state.epoch_sums if info.is_main else [0.0] * 3, device=trainer.device)
        interval_sums = torch.zeros(3, device=trainer.device)
        started = interval_start = time.perf_counter()
        interval_steps = 0
        for step_in_epoch, (real_a, real_b) in enumerate(trainer.batches(plan, first), start=first + 1):
            seed_global_rngs(cfg.seed, epoch, info.rank, step_in_epoch)
            losses = trainer.step(real_a, real_b)
            sums += losses
            interval_sums += losses
            interval_steps += 1
            state.step += 1
            state.step_in_epoch = step_in_epoch
            stop_now = info.world_size == 1 and stop.signal_name is not None
            if state.step % cfg.log_every_steps == 0:
                means, stop_now = trainer.mean_over_ranks(interval_sums, interval_steps, stop.signal_name is not None)
                _check_finite_losses(means, f"epoch {epoch} step {step_in_epoch}", state.last_good())
                now = time.perf_counter()
                if progress is not None and info.is_main:
                    rate = interval_steps / (now - interval_start)
                    progress(ProgressInfo(epoch, cfg.total_epochs, step_in_epoch, steps, state.step, *means,
                                          trainer.opt_g.param_groups[0]["lr"], rate, rate * cfg.batch_size))
                interval_sums.zero_()
                interval_start, interval_steps = now, 0
            if step_in_epoch == steps:
                break
            # A stop (agreed by every rank) writes a checkpoint too, so that no finished step is lost.
            if stop_now or (cfg.checkpoint_every_steps and state.step % cfg.checkpoint_every_steps == 0):
                state.epoch_sums = distributed.all_reduce_sum(sums.clone(), info.world_size).tolist()
                self.checkpoint()
            if stop_now:
                raise TrainingInterrupted(
                    f"training stopped by {stop.signal_name or 'a signal on another rank'} in epoch {epoch} step "
                    f"{step_in_epoch}; the last checkpoint is {state.last_good()}: run the same command again to resume"
                )
        if trainer.cuda:
            torch.cuda.synchronize(trainer.device)
        seconds = time.perf_counter() - started
        means, stop_now = trainer.mean_over_ranks(sums, steps, stop.signal_name is not None)
        _check_finite_losses(means, f"the end of epoch {epoch}", state.last_good())
        lr = trainer.opt_g.param_groups[0]["lr"]
        images = (steps - first) * cfg.batch_size
        return dict(zip(HISTORY_KEYS, [epoch, *means, lr, images / seconds, seconds])), stop_now


def _agree_on_resume(plan: ResumePlan, info: distributed.DistInfo) -> None:
    """Raise TrainingError unless every rank resumes from the same epoch and step (the same file)."""
    epoch, step = plan.position
    if not distributed.all_equal([epoch, step], info.world_size):
        raise TrainingError(
            f"rank {info.rank} would resume from epoch {epoch} step {step} ({plan.path or 'no checkpoint'}) but "
            "another rank from elsewhere: give every node the same out_dir (a shared folder), or remove its "
            "checkpoints on all nodes"
        )


def train(
    cfg: TrainConfig,
    train_pairs: Pairs,
    out_dir: Path,
    *,
    on_snapshot: Callable[[int, Path], None] | None = None,
    progress: Callable[[ProgressInfo], None] | None = None,
    device: torch.device | None = None,
    description: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Train (or resume training) a pix2pix generator on ``train_pairs``; write snapshots and checkpoints to ``out_dir``.

    ``train_pairs`` is a uint8 ``(N, 2, H, W, 3)`` array or split view (memory maps and views from
    :func:`pix2pix.data.store.open_pairs` are read batch by batch). Under ``torchrun`` call
    :func:`pix2pix.training.distributed.init_from_env` first and pass its device; every rank calls ``train``.
    ``progress`` (at log steps) and ``on_snapshot(epoch, path)`` (after each snapshot is written) run on rank 0
    only and must not use collective operations. ``description`` (the data's palette, classes, …) is stored in
    every snapshot. A run whose checkpoint already holds every epoch (same config, data and training code)
    trains nothing and returns its snapshots. Seeds the global RNGs.

    Raises TrainingError on non-finite losses or weights (the previous checkpoint stays), and
    TrainingInterrupted on SIGTERM/SIGINT; DataError/ConfigError on unusable inputs.
    """
    info = distributed.current(device)
    out_dir = Path(out_dir)
    if cfg.batch_size % info.world_size:
        raise ConfigError(f"batch_size {cfg.batch_size} does not split evenly over {info.world_size} processes")
    _check_pairs(train_pairs, cfg, "train_pairs", cfg.batch_size)
    fingerprint = data_fingerprint(train_pairs)
    with backend_settings(cfg, info.device), StopRequest() as stop:
        trainer = RankTrainer(cfg, train_pairs, info)
        checkpoint, path = read_latest(out_dir / CHECKPOINTS_DIR, trainer.device)
        plan = plan_resume(checkpoint, path, cfg, fingerprint)
        del checkpoint
        fresh_start_reason = plan.reason
        _agree_on_resume(plan, info)
        distributed.barrier()  # every rank has read its checkpoint before rank 0 may move it aside
        discarded_to = None
        if plan.checkpoint is None and info.is_main:  # a fresh run keeps no file of another one
            discarded_to = discard_run(out_dir, (CHECKPOINTS_DIR, SNAPSHOTS_DIR))
            if discarded_to is not None:
                why = plan.reason or "no checkpoint there is usable"
                log.warning("note: %s; training from scratch (old files moved to %s)", why, discarded_to)
        state = _RunState()
        if plan.checkpoint is not None:
            trainer.load_state_dict(plan.checkpoint)
            state = _RunState.of(plan.checkpoint, plan.path)
        del plan
        run = _Run(trainer, state, out_dir, fingerprint, description)
        resumed_from = state.epoch - (1 if state.step_in_epoch else 0)
        snapshots: dict[int, Path] = {}

        def announce(epoch: int) -> None:
            if on_snapshot is not None and epoch in snapshots:
                on_snapshot(epoch, snapshots[epoch])

        if info.is_main:
            for folder in (CHECKPOINTS_DIR, SNAPSHOTS_DIR):  # what writers killed mid-write left
                remove_dead_temporaries(out_dir / folder)
        if info.is_main and state.epoch == 0 and is_snapshot_epoch(cfg, 0):
            snapshots[0] = run.snapshot(0, None)
            announce(0)
        first_epoch = state.epoch if state.step_in_epoch else state.epoch + 1
        for epoch in range(first_epoch, cfg.total_epochs + 1):
            lr = lr_at_epoch(epoch, cfg.epochs, cfg.epochs_decay, cfg.lr)
            trainer.set_lr(lr)
            if state.epoch != epoch:
                state.epoch, state.step_in_epoch, state.epoch_sums = epoch, 0, [0.0, 0.0, 0.0]
            entry, stop_now = run.run_epoch(epoch, stop, progress)
            # Diverged weights stop the run before a snapshot or a checkpoint holds them.
            _check_finite_weights([trainer.g_raw, trainer.d_raw], epoch, state.last_good())
            state.step_in_epoch, state.epoch_sums = 0, [0.0, 0.0, 0.0]
            state.lrs.append(lr)
            state.history.append(entry)
            # The snapshot before the checkpoint: a run killed between the two redoes the epoch and writes both.
            if info.is_main and is_snapshot_epoch(cfg, epoch):
                # Numbers that repeat run to run only: a snapshot's bytes depend on the weights, never on timings.
                snapshots[epoch] = run.snapshot(epoch, {key: entry[key] for key in LOSS_COLUMNS})
            run.checkpoint()
            if info.is_main:
                log.info("epoch %d/%d: loss_G %.3f, L1 %.4f, loss_D %.3f, lr %.2e, %.1f img/s", epoch, cfg.total_epochs,
                         entry["loss_g"], entry["loss_l1"], entry["loss_d"], lr, entry["img_per_s"])
                announce(epoch)
            if stop_now and epoch < cfg.total_epochs:
                raise TrainingInterrupted(
                    f"training stopped by {stop.signal_name or 'a signal on another rank'} after epoch {epoch}; run the "
                    f"same command again to resume from {state.last_good()}"
                )
        final = snapshot_file(out_dir / SNAPSHOTS_DIR, cfg.total_epochs)
    return TrainResult(
        final, snapshots, state.history, resumed_from, cfg.total_epochs - resumed_from, fresh_start_reason,
        discarded_to, trainer.g_raw, trainer.d_raw,
    )
