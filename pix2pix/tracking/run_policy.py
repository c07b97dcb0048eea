"""Which MLflow run a run's scores go to: the one owner of the continuation policy.

One MLflow run per scored training run and DVC experiment. The run recorded in the run record is continued
when it scored the same training run (its snapshots' config hash and data fingerprint), for the same DVC
experiment (``$DVC_EXP_NAME``) with the same params (MLflow params are immutable); otherwise a new run starts,
tagged ``resumed_from_run`` when it continues the same training (``-S epochs=<more>``) and given every epoch's
scores. An epoch reaches a run once (the live scores during training and the `evaluate` stage after it share
the record), whoever logs it. A backlog that a failed store left is replayed first (it stays, with one line, when
the store fails again).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pix2pix.tracking.run_record import RunRecord
from pix2pix.errors import DataError
from pix2pix.provenance import git_state
from pix2pix.tracking.replay import replay_backlog
from pix2pix.tracking.tracker import Tracker, experiment_name, project_root, tracking_uri


log = logging.getLogger(__name__)


def params_hash(run_params: Mapping[str, Any]) -> str:
    """sha256 (hex) of the run's MLflow params."""
    return hashlib.sha256(json.dumps(dict(run_params), sort_keys=True, default=str).encode()).hexdigest()


def open_run(
    *,
    enabled: bool,
    record_path: Path,
    backlog: Path,
    dataset: str,
    direction: str,
    run_params: Mapping[str, Any],
    training: str,
    tags: Mapping[str, str],
) -> tuple[Tracker | None, RunRecord]:
    """Start or continue the MLflow run of these scores (None when tracking is off) and write the run record."""
    exp_name = os.environ.get("DVC_EXP_NAME", "")
    wanted = params_hash(run_params)
    record = RunRecord.read(record_path)
    same_training = record is not None and bool(record.run_id) and record.training == training
    same_run = same_training and record.exp_name == exp_name and record.params_hash == wanted
    if not enabled:
        new_record = RunRecord(None, exp_name, wanted, training, [])
        new_record.write(record_path)
        return None, new_record
    if backlog.is_file():
        try:
            log.info("note: replayed %d MLflow run(s) from %s", len(replay_backlog(backlog)), backlog)
        except DataError as error:
            log.warning("note: %s stays for later (`pix2pix tracking replay`): %s", backlog, error)
    root = project_root()
    tracker = Tracker(
        uri=tracking_uri(root), experiment=experiment_name(dataset, direction), backlog=backlog,
        run_id=record.run_id if same_run else None, system_metrics=False,
    )
    run_tags = {"dvc_exp_name": exp_name, "dataset": dataset, **git_state(root), **tags}
    if same_training and not same_run:
        run_tags["resumed_from_run"] = record.run_id
    tracker.start(exp_name or None, run_params, run_tags)
    new_record = RunRecord(tracker.run_id, exp_name, wanted, training, list(record.logged_epochs) if same_run else [])
    new_record.write(record_path)
    return tracker, new_record


def log_scored_epoch(
    tracker: Tracker | None, record: RunRecord, record_path: Path, row: Mapping[str, Any], grid: Path | None
) -> None:
    """Send one scored epoch's row (metrics at ``step=epoch``) and sample grid, unless the run has it already."""
    epoch = row["epoch"]
    if tracker is None or epoch in record.logged_epochs:
        return
    tracker.log_metrics({key: value for key, value in row.items() if key != "epoch"}, step=epoch)
    if grid is not None:
        tracker.log_image(grid, key="samples", step=epoch)
    record.logged_epochs = sorted({*record.logged_epochs, epoch})
    record.write(record_path)
