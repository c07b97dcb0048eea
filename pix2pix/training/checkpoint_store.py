"""The folder of training checkpoints: the last few kept, the newest readable one resumed.

``<out_dir>/checkpoints/epoch_EEEE_step_SSSSSSSSS.pt`` (format in :mod:`pix2pix.training.checkpoint`): written
at every epoch's end and every ``checkpoint_every_steps`` steps, each one durable (fsync'd before and after
its rename) before the oldest beyond ``keep`` is deleted. A crash of the node while one is written, or a disk
that corrupts it, leaves the previous one to resume from: :func:`read_latest` falls back with one line.

A run that must start over does not delete anything: :func:`discard_run` moves its checkpoints and snapshots to
``<out_dir>/discarded/<UTC time>/``, one folder per discard.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from pix2pix.errors import TrainingError
from pix2pix.training.checkpoint import load_checkpoint, save_atomic

log = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
DISCARDED_DIR = "discarded"
CHECKPOINT_NAME = re.compile(r"^epoch_(?P<epoch>\d{4,})_step_(?P<step>\d{9,})\.pt$")


def checkpoint_file(folder: Path, epoch: int, step: int) -> Path:
    """Where the checkpoint after ``step`` optimizer steps, inside (or at the end of) ``epoch``, is written."""
    return Path(folder) / f"epoch_{epoch:04d}_step_{step:09d}.pt"


def list_checkpoints(folder: Path) -> list[Path]:
    """The checkpoint files of ``folder``, newest (most steps) first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m["step"]), int(m["epoch"]), p) for p in folder.iterdir() if (m := CHECKPOINT_NAME.match(p.name))]
    return [path for _, _, path in sorted(found, reverse=True)]


def write_checkpoint(payload: Mapping[str, Any], folder: Path, keep: int) -> Path:
    """Write ``payload`` (its ``epoch`` and ``step`` name the file) durably; then delete all but the newest ``keep``."""
    path = checkpoint_file(folder, payload["epoch"], payload["step"])
    save_atomic(dict(payload), path)
    for old in list_checkpoints(folder)[keep:]:
        old.unlink(missing_ok=True)
    return path


def read_latest(folder: Path, device: torch.device | str) -> tuple[dict[str, Any] | None, Path | None]:
    """The newest readable checkpoint of ``folder`` and its path, or ``(None, None)``.

    An unreadable newer file (truncated by a crash, foreign, of an old format) is skipped with one warning line
    that names it and the file resumed instead.
    """
    candidates = list_checkpoints(folder)
    for index, path in enumerate(candidates):
        try:
            return load_checkpoint(path, device), path
        except TrainingError as error:
            fallback = candidates[index + 1].name if index + 1 < len(candidates) else "nothing (training from scratch)"
            log.warning("%s is unusable (%s); resuming from %s", path, short_reason(error), fallback)
    return None, None


def short_reason(error: BaseException) -> str:
    """The first line of an error, cut to 160 characters (torch's unpickling errors run to paragraphs)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def discard_run(out_dir: Path, names: tuple[str, ...]) -> Path | None:
    """Move the folders ``names`` of ``out_dir`` (a finished or foreign run) into ``discarded/<UTC time>``.

    Returns that folder, or None when there was nothing to move.
    """
    present = [Path(out_dir) / name for name in names if (Path(out_dir) / name).exists()]
    if not present:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = Path(out_dir) / DISCARDED_DIR / stamp
    suffix = 1
    while target.exists():
        suffix += 1
        target = Path(out_dir) / DISCARDED_DIR / f"{stamp}-{suffix}"
    target.mkdir(parents=True)
    for path in present:
        os.replace(path, target / path.name)
    return target
