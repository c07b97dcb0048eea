"""Whether a training run continues its checkpoint, has nothing left to do, or must start over — and why.

The one owner of that decision (the stage, the CLI and the library's callers all get it from :func:`plan_resume`):

- an unfinished checkpoint of the same weight-relevant config (:func:`~pix2pix.training.config.config_hash`),
  data (:func:`data_fingerprint`) and learning rates of its finished epochs is continued, at the step it holds;
- a finished one that also holds the same training code (:func:`training_code_hash`) has nothing left to do: a
  change of evaluation, tracking or logging never trains again;
- anything else (other config or data, a finished run whose training code changed) starts over, after moving
  the old checkpoints and snapshots aside (:func:`~pix2pix.training.checkpoint_store.discard_run`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pix2pix.data.store import Pairs
from pix2pix.keys import flatten_keys
from pix2pix.training.config import NON_WEIGHT_FIELDS, TrainConfig, config_hash
from pix2pix.training.schedule import lr_at_epoch

# Pairs hashed into the data fingerprint: enough to notice another data set, cheap on a 20 GB memory map.
FINGERPRINT_PAIRS = 64
TRAINING_CODE_DIR = Path(__file__).resolve().parent


def data_fingerprint(pairs: Pairs) -> str:
    """sha256 (hex) of the shape of ``pairs`` and of up to 64 evenly spaced pairs; tells data sets apart cheaply."""
    digest = hashlib.sha256(repr(tuple(pairs.shape)).encode())
    for index in np.unique(np.linspace(0, len(pairs) - 1, min(len(pairs), FINGERPRINT_PAIRS)).round().astype(int)):
        digest.update(np.ascontiguousarray(pairs[index]).tobytes())
    return digest.hexdigest()


def training_code_hash() -> str:
    """sha256 (hex) of the sources of :mod:`pix2pix.training`: what computes the weights."""
    digest = hashlib.sha256()
    for path in sorted(TRAINING_CODE_DIR.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


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
    finished = checkpoint["epoch"] - (1 if checkpoint["step_in_epoch"] else 0)
    if checkpoint["epoch"] > cfg.total_epochs:
        return f"it has finished {finished} epochs, more than the {cfg.total_epochs} asked for"
    lrs = [lr_at_epoch(epoch, cfg.epochs, cfg.epochs_decay, cfg.lr) for epoch in range(1, finished + 1)]
    if lrs != list(checkpoint["lrs"]):
        return "its finished epochs used other learning rates than epochs/epochs_decay now give"
    return None


def is_complete(checkpoint: Mapping[str, Any], cfg: TrainConfig) -> bool:
    """Whether ``checkpoint`` holds the end of the last epoch ``cfg`` asks for."""
    return checkpoint["epoch"] == cfg.total_epochs and checkpoint["step_in_epoch"] == 0


@dataclass(frozen=True)
class ResumePlan:
    """What a run does with the checkpoint found: continue it (``checkpoint`` set), or start over (``reason`` set
    when an existing checkpoint is set aside)."""

    checkpoint: dict[str, Any] | None
    path: Path | None
    reason: str | None

    @property
    def position(self) -> tuple[int, int]:
        """``(epoch, step_in_epoch)`` the run continues from; ``(0, 0)`` from scratch."""
        if self.checkpoint is None:
            return 0, 0
        return self.checkpoint["epoch"], self.checkpoint["step_in_epoch"]


def plan_resume(
    checkpoint: dict[str, Any] | None, path: Path | None, cfg: TrainConfig, fingerprint: str
) -> ResumePlan:
    """Decide what to do with the newest readable ``checkpoint`` (at ``path``; None when there is none)."""
    if checkpoint is None:
        return ResumePlan(None, None, None)
    reason = resume_mismatch(checkpoint, cfg, fingerprint)
    if reason is None and is_complete(checkpoint, cfg) and checkpoint["training_code"] != training_code_hash():
        reason = "the training code changed since it finished"
    if reason is not None:
        return ResumePlan(None, None, f"{path} is not continued because {reason}")
    return ResumePlan(checkpoint, path, None)
