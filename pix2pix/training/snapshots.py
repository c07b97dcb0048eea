"""Generator snapshots: the weights of every scored epoch, kept so that scoring never needs training again.

``<out_dir>/snapshots/epoch_EEEE.pt`` is a ``generator.pt`` file (:func:`~pix2pix.training.generator_file.generator_payload`,
so ``translate``/``evaluate`` load it as they load the final one) plus what evaluation reports beside the
scores: ``train_stats`` (that epoch's losses and learning rate, no timings: two runs write the same bytes; None
for the untrained generator),
``train_config`` (the whole :class:`~pix2pix.training.config.TrainConfig`, for the record), ``config_hash`` and
``data_fingerprint`` (which run it belongs to).

Written by rank 0 after epochs ``snapshot_every``, 2·``snapshot_every``, … and after the last (and before
the first with ``snapshot_untrained``). Disk: one generator's weights each — 218 MB at 256² with the paper's
widths (54.4 M float32 parameters), 3.4 MB for the default sample run's half widths at 128².
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from pix2pix.training.checkpoint import save_atomic
from pix2pix.training.generator_file import generator_payload
from pix2pix.training.config import TrainConfig, config_hash
from pix2pix.training.model import InferenceMode

SNAPSHOTS_DIR = "snapshots"
SNAPSHOT_NAME = re.compile(r"^epoch_(?P<epoch>\d{4,})\.pt$")


def snapshot_file(folder: Path, epoch: int) -> Path:
    """Where the generator after ``epoch`` (0: untrained) is kept."""
    return Path(folder) / f"epoch_{epoch:04d}.pt"


def is_snapshot_epoch(cfg: TrainConfig, epoch: int) -> bool:
    """Whether the generator after ``epoch`` is kept (epoch 0 = before training)."""
    if epoch == 0:
        return cfg.snapshot_untrained
    return epoch % cfg.snapshot_every == 0 or epoch == cfg.total_epochs


def list_snapshots(folder: Path) -> list[tuple[int, Path]]:
    """``(epoch, path)`` of the snapshots in ``folder``, by epoch."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted((int(m["epoch"]), p) for p in folder.iterdir() if (m := SNAPSHOT_NAME.match(p.name)))


def write_snapshot(
    folder: Path,
    generator: nn.Module,
    cfg: TrainConfig,
    epoch: int,
    train_stats: Mapping[str, Any] | None,
    fingerprint: str,
    description: Mapping[str, Any] | None,
) -> Path:
    """Save the generator after ``epoch`` with its ``train_stats``; return the file (written atomically, durably).

    The recorded test-time mode is the default one: the evaluation that scores the snapshot records its own.
    """
    described = dict(description) if description is not None else None
    payload = generator_payload(generator, cfg.model, cfg.direction, epoch, InferenceMode(), described)
    payload.update(
        train_stats=dict(train_stats) if train_stats is not None else None, train_config=cfg.to_dict(),
        config_hash=config_hash(cfg), data_fingerprint=fingerprint,
    )
    path = snapshot_file(folder, epoch)
    save_atomic(payload, path)
    return path
