"""What changes from epoch to epoch: the learning-rate schedule, the seeds and each epoch's visiting order.

Everything random in epoch ``e`` comes from generators seeded from ``(seed, e)`` at its start — the visiting
order and the jitter, identical on every rank — and from ``(seed, e, rank, s)`` before its step ``s`` — the
global torch/numpy/python RNGs that dropout uses. A checkpoint, at an epoch's end or inside one, therefore
needs no RNG state, and a run resumed at any step draws exactly what an uninterrupted one draws.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from pix2pix.errors import ConfigError
from pix2pix.training.augment import JitterParams, draw_jitter
from pix2pix.training.config import TrainConfig

# Independent random streams derived from the seed.
STREAM_DATA, STREAM_GLOBAL = 0, 1


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


def seed_global_rngs(seed: int, epoch: int, rank: int, step_in_epoch: int) -> None:
    """Seed torch (CPU and CUDA), numpy and python ``random`` for one step on ``rank`` (dropout draws from these)."""
    value = derive_seed(seed, epoch, STREAM_GLOBAL, rank, step_in_epoch)
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
    generator = torch.Generator().manual_seed(derive_seed(cfg.seed, epoch, STREAM_DATA))
    used = pair_count // cfg.batch_size * cfg.batch_size
    order = torch.randperm(pair_count, generator=generator)[:used]
    jitter = draw_jitter(used, cfg.model.image_size, generator, jitter=cfg.jitter, flip=cfg.flip)
    return EpochPlan(order.numpy(), jitter)
