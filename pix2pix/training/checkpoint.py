"""On-disk format of training's resumable checkpoint (the final ``generator.pt``: :mod:`pix2pix.training.generator_file`).

A ``torch.save`` file of plain containers and tensors only, so it loads with ``torch.load(weights_only=True)``
(no unpickling of code), written atomically.

``checkpoint.pt`` (written by rank 0 after every epoch) holds::

    format_version, config (TrainConfig.to_dict()), config_hash, data_fingerprint,
    epoch (completed epochs, 1-based), step (optimizer steps so far), lrs (LR of each completed epoch),
    generator, discriminator, opt_g, opt_d, scaler (state dicts), history (one dict per epoch)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pix2pix.atomic import atomic_path
from pix2pix.errors import TrainingError

FORMAT_VERSION = 1
CHECKPOINT_FILE = "checkpoint.pt"
GENERATOR_FILE = "generator.pt"
CHECKPOINT_KEYS = frozenset(
    {"format_version", "config", "config_hash", "data_fingerprint", "epoch", "step", "lrs", "generator",
     "discriminator", "opt_g", "opt_d", "scaler", "history"}
)


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """``torch.save`` ``obj`` to ``path`` so that the file is either the previous one or complete."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _load(path: Path, device: torch.device | str, required: frozenset[str], what: str) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` a dict with at least the ``required`` keys; TrainingError otherwise."""
    try:
        data = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # torch raises many types for a truncated or foreign file
        raise TrainingError(f"{path}: not a readable {what} ({error}); delete it or retrain") from error
    if not isinstance(data, dict) or not required <= set(data):
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise TrainingError(f"{path}: not a pix2pix {what} (found {keys}); delete it or retrain")
    if data["format_version"] != FORMAT_VERSION:
        raise TrainingError(
            f"{path}: {what} format {data['format_version']!r}, this version reads {FORMAT_VERSION}; retrain"
        )
    return data


def load_checkpoint(path: Path, device: torch.device | str) -> dict[str, Any] | None:
    """Read a training checkpoint onto ``device``; ``None`` when there is none, TrainingError when unusable."""
    try:
        return _load(Path(path), device, CHECKPOINT_KEYS, "training checkpoint")
    except FileNotFoundError:
        return None
