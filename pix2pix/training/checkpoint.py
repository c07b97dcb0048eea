"""On-disk format of training's resumable checkpoint (the final ``generator.pt``: :mod:`pix2pix.training.generator_file`).

A ``torch.save`` file of plain containers and tensors only, so it loads with ``torch.load(weights_only=True)``
(no unpickling of code), written atomically.

A training checkpoint (written by rank 0 at every epoch's end and, optionally, inside epochs; the folder is
managed by :mod:`pix2pix.training.checkpoint_store`) holds::

    format_version (2), config (TrainConfig.to_dict()), config_hash, data_fingerprint, training_code,
    epoch (the epoch it is in or has finished, 1-based), step_in_epoch (steps of ``epoch`` done; 0 at its end),
    step (optimizer steps so far), epoch_sums (float32 (3,) loss sums of ``epoch`` so far, over all ranks),
    lrs (LR of each completed epoch), generator, discriminator, opt_g, opt_d, scaler (state dicts),
    history (one dict per finished epoch: losses, lr, rate)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pix2pix.atomic import atomic_path
from pix2pix.errors import TrainingError

CHECKPOINT_FORMAT_VERSION = 2  # 2: step_in_epoch, epoch_sums, training_code (mid-epoch resume)
GENERATOR_FILE = "generator.pt"
CHECKPOINT_KEYS = frozenset(
    {"format_version", "config", "config_hash", "data_fingerprint", "training_code", "epoch", "step_in_epoch",
     "step", "epoch_sums", "lrs", "generator", "discriminator", "opt_g", "opt_d", "scaler", "history"}
)


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """``torch.save`` ``obj`` to ``path`` so that the file is either the previous one or complete."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _load(
    path: Path, device: torch.device | str, required: frozenset[str], what: str, version: int = CHECKPOINT_FORMAT_VERSION
) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` a dict with at least the ``required`` keys; TrainingError otherwise."""
    try:
        data = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # torch raises many types for a truncated or foreign file
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
        raise TrainingError(f"{path}: not a readable {what} ({first_line}); delete it or retrain") from error
    if not isinstance(data, dict) or "format_version" not in data:
        keys = sorted(data)[:12] if isinstance(data, dict) else type(data).__name__
        raise TrainingError(f"{path}: not a pix2pix {what} (found {keys}); delete it or retrain")
    if data["format_version"] != version:
        raise TrainingError(f"{path}: {what} format {data['format_version']!r}, this version reads {version}")
    if not required <= set(data):
        raise TrainingError(f"{path}: not a pix2pix {what} (missing {sorted(required - set(data))})")
    return data


def load_checkpoint(path: Path, device: torch.device | str) -> dict[str, Any] | None:
    """Read a training checkpoint onto ``device``; ``None`` when there is none, TrainingError when unusable."""
    try:
        return _load(Path(path), device, CHECKPOINT_KEYS, "training checkpoint", CHECKPOINT_FORMAT_VERSION)
    except FileNotFoundError:
        return None

