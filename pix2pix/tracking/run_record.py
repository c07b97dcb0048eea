"""What the scores of a run leave for people and for DVC: the rows of ``epochs.tsv``, and the MLflow run record.

``EPOCH_COLUMNS`` is the one definition of the per-scored-epoch table of numbers that depend only on the code, the
params and the data (DVC plots, the README and the tests use it): two runs of the same commit on the same
machine write it byte for byte the same. Wall-clock times are kept apart (``timings.tsv``, written by training).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pix2pix.atomic import write_json_atomic

EPOCH_COLUMNS = (
    "epoch", "fid", "kid", "is_mean", "is_std", "l1", "psnr", "ssim",
    "mask_pixel_acc", "mask_class_acc", "mask_miou", "loss_g", "loss_d", "loss_l1", "lr",
)


def epoch_row(epoch: int, train_stats: Mapping[str, Any] | None, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """One scored epoch's ``EPOCH_COLUMNS``: the scores and the training statistics of its snapshot (None for
    the untrained generator)."""
    values = {**(train_stats or {}), **metrics, "epoch": epoch}
    return {column: values.get(column) for column in EPOCH_COLUMNS}


@dataclass
class RunRecord:
    """Which MLflow run (None: tracking off) a run's scores went to, for which DVC experiment and training run."""

    run_id: str | None
    exp_name: str
    params_hash: str = ""  # the MLflow params of that run: other values need a run of their own
    training: str = ""  # the training run scored (config hash and data fingerprint of its snapshots)
    logged_epochs: list[int] = field(default_factory=list)  # epochs whose scores reached the run

    @classmethod
    def read(cls, path: Path) -> RunRecord | None:
        """The record at ``path``, or None when absent or unreadable (then a new run starts)."""
        try:
            data = json.loads(Path(path).read_text())
            return cls(data["run_id"], data["exp_name"], data["params_hash"], data["training"], list(data["logged_epochs"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, path: Path) -> None:
        write_json_atomic(path, asdict(self))
