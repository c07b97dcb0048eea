"""The train stage's params mapping and process launch, and the checks the scoring setup makes at start-up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from pix2pix.errors import ConfigError
from pix2pix.evaluation.scoring import Reference
from pix2pix.evaluation.setup import check_inception_score_images
from pix2pix.tracking.run_policy import open_run
from pix2pix.training.config import train_config_from_params
from stages import train as train_stage
from tests.project import REPO, set_key


def test_params_choose_the_decoder() -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    set_key(params, "model.upsample", "resize")
    set_key(params, "train.checkpoint_every_steps", 500)
    cfg = train_config_from_params(params, (32, 32), mask_input=True)
    assert (cfg.model.upsample, cfg.checkpoint_every_steps, cfg.model.image_size) == ("resize", 500, (32, 32))


def test_run_record_is_written_when_tracking_is_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DVC_EXP_NAME", "exp-a")
    record_path = tmp_path / "mlflow_run.json"
    tracker, record = open_run(
        enabled=False, record_path=record_path, backlog=tmp_path / "backlog.jsonl", dataset="sample",
        direction="AtoB", run_params={"seed": 1}, training="abc:def", tags={},
    )
    assert tracker is None and record.run_id is None
    assert record_path.read_text().count('"exp_name": "exp-a"') == 1


@pytest.mark.parametrize(("kind", "count", "fails"), [("full", 9, True), ("full", 10, False), ("trunk", 3, False)])
def test_inception_score_needs_ten_eval_images_checked_at_start_up(kind: str, count: int, fails: bool) -> None:
    reference = Reference(np.zeros((count, 4)), kind, np.arange(count))
    if fails:
        with pytest.raises(ConfigError, match="raise eval.num_images to 10"):
            check_inception_score_images(reference, Path("features.npz"))
    else:
        check_inception_score_images(reference, Path("features.npz"))


@pytest.mark.parametrize(("gpus", "visible", "expected"), [(1, 0, 1), (2, 0, 2), ("all", 0, 1), ("all", 8, 8), (4, 8, 4)])
def test_train_gpus_gives_the_number_of_processes(gpus, visible: int, expected: int) -> None:
    assert train_stage.process_count(gpus, visible) == expected


def test_more_gpus_than_the_machine_has_are_refused() -> None:
    with pytest.raises(ConfigError, match="train.gpus is 4 but this machine has 2 GPUs"):
        train_stage.process_count(4, 2)


def test_several_processes_are_launched_by_torchrun_on_this_machine() -> None:
    command = train_stage.launch_command(8)
    assert command[1:] == [
        "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=8", "-m", "stages.train",
    ]
