"""The files a training run leaves for people and for DVC: ``epochs.tsv``, ``timings.tsv`` and the MLflow run record.

``EPOCH_COLUMNS`` is the one definition of the per-epoch table of numbers that depend only on the code, the
params and the data (DVC plots, the README and the tests use it): two runs of the same commit on the same
machine write it byte for byte the same. ``TIMING_COLUMNS`` are the wall-clock measurements, kept apart in
``timings.tsv`` (a plot no stage depends on) so that they do not change ``dvc.lock`` on every run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pix2pix.atomic import write_json_atomic, write_text_atomic

EPOCH_COLUMNS = (
    "epoch", "fid", "kid", "is_mean", "is_std", "l1", "psnr", "ssim",
    "mask_pixel_acc", "mask_class_acc", "mask_miou", "loss_g", "loss_d", "loss_l1", "lr",
)
TIMING_COLUMNS = ("epoch", "img_per_s", "seconds", "eval_seconds")
NOTHING_LOGGED = -1  # RunRecord.logged_epoch before any epoch (0 included) reached MLflow
MISSING = ""  # an epoch without evaluation (eval.every > 1) or a metric that cannot be computed (IS with the trunk)


def epoch_row(report: Any, metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    """One epoch's ``EPOCH_COLUMNS`` and ``TIMING_COLUMNS`` from a trainer
    :class:`~pix2pix.training.loop.EpochReport` and the evaluation metrics (or None)."""
    columns = dict.fromkeys(EPOCH_COLUMNS + TIMING_COLUMNS)
    row: dict[str, Any] = {column: None for column in columns}
    row.update(report.metrics())
    if metrics:
        row.update({k: metrics[k] for k in columns if k in metrics})
    return {column: row[column] for column in columns}


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write_epochs_tsv(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = EPOCH_COLUMNS) -> None:
    """Write ``columns`` of the per-epoch ``rows`` (header + one line per epoch, sorted by epoch) atomically.

    ``EPOCH_COLUMNS`` make ``epochs.tsv``, ``TIMING_COLUMNS`` ``timings.tsv``; other keys of ``rows`` are ignored.
    """
    ordered = sorted(rows, key=lambda r: r["epoch"])
    lines = ["\t".join(columns)] + ["\t".join(_cell(row.get(c)) for c in columns) for row in ordered]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "\n".join(lines) + "\n")


def read_epochs_tsv(path: Path) -> list[dict[str, float | int | None]]:
    """Read ``epochs.tsv`` back; empty cells become None."""
    header, *lines = Path(path).read_text().splitlines()
    columns = header.split("\t")
    rows = []
    for line in lines:
        values = line.split("\t")
        rows.append({c: (None if v == MISSING else (int(v) if c == "epoch" else float(v))) for c, v in zip(columns, values)})
    return rows


@dataclass
class RunRecord:
    """Which MLflow run (None: tracking off) a model directory belongs to, and the DVC experiment that made it."""

    run_id: str | None
    exp_name: str
    params_hash: str = ""  # the MLflow params of that run: other values need a run of their own
    # The last epoch whose metrics reached the run (a resumed epoch is not logged twice); epoch 0 is the
    # untrained generator, so NOTHING_LOGGED is -1.
    logged_epoch: int = NOTHING_LOGGED

    @classmethod
    def read(cls, path: Path) -> RunRecord | None:
        """The record at ``path``, or None when absent or unreadable (then a new run starts)."""
        try:
            data = json.loads(Path(path).read_text())
            return cls(
                run_id=data["run_id"], exp_name=data["exp_name"], params_hash=data.get("params_hash", ""),
                logged_epoch=int(data.get("logged_epoch", NOTHING_LOGGED)),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, path: Path) -> None:
        write_json_atomic(path, asdict(self))
