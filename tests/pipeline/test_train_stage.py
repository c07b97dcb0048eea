"""The train stage's resume decision and run record, on a real tiny checkpoint."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml

from pix2pix.errors import ConfigError
from pix2pix.evaluation.scoring import Reference
from pix2pix.training.model import ModelConfig
from pix2pix.training.loop import TrainConfig, train
from stages import train as train_stage
from stages.paths import CHECKPOINT, MODELS_DIR
from tests.project import REPO, set_key


def tiny_config(epochs: int) -> TrainConfig:
    return TrainConfig(model=ModelConfig(image_size=(32, 32), ngf=8, ndf=8), batch_size=4, epochs=epochs, sample_count=0)


@pytest.fixture()
def pairs() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (8, 2, 32, 32, 3), dtype=np.uint8)


def test_unfinished_checkpoint_is_continued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pairs: np.ndarray) -> None:
    monkeypatch.chdir(tmp_path)
    train(tiny_config(1), pairs, pairs[:0], MODELS_DIR)
    checkpoint = train_stage.checkpoint_to_continue(tiny_config(2), pairs)
    assert checkpoint is not None and checkpoint["epoch"] == 1 and CHECKPOINT.is_file()


def test_finished_checkpoint_is_discarded_so_a_rerun_trains_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pairs: np.ndarray) -> None:
    monkeypatch.chdir(tmp_path)
    train(tiny_config(1), pairs, pairs[:0], MODELS_DIR)
    assert train_stage.checkpoint_to_continue(tiny_config(1), pairs) is None
    assert not CHECKPOINT.exists()


def test_checkpoint_of_other_data_is_discarded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pairs: np.ndarray) -> None:
    monkeypatch.chdir(tmp_path)
    train(tiny_config(1), pairs, pairs[:0], MODELS_DIR)
    assert train_stage.checkpoint_to_continue(tiny_config(2), 255 - pairs) is None


def test_params_choose_the_decoder_and_a_checkpoint_of_the_other_one_is_not_continued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pairs: np.ndarray
) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    set_key(params, "model.upsample", "resize")
    cfg = train_stage.train_config(params, (32, 32), mask_input=True)
    assert cfg.model.upsample == "resize"
    monkeypatch.chdir(tmp_path)
    train(tiny_config(1), pairs, pairs[:0], MODELS_DIR)  # the paper's transposed decoder
    resized = dataclasses.replace(tiny_config(2), model=dataclasses.replace(tiny_config(2).model, upsample="resize"))
    assert train_stage.checkpoint_to_continue(resized, pairs) is None
    assert CHECKPOINT.with_name(CHECKPOINT.name + ".discarded").is_file()


def test_run_record_is_written_when_tracking_is_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_EXP_NAME", "exp-a")
    params = {"mlflow": {"enabled": False}, "dataset": "sample", "direction": "AtoB"}
    tracker, record = train_stage.start_tracker(params, {"seed": 1}, [], "cpu")
    assert tracker is None and record.run_id is None
    assert (tmp_path / "models" / "run.json").read_text().count('"exp_name": "exp-a"') == 1


@pytest.mark.parametrize(("kind", "count", "fails"), [("full", 9, True), ("full", 10, False), ("trunk", 3, False)])
def test_inception_score_needs_ten_eval_images_checked_at_start_up(kind: str, count: int, fails: bool) -> None:
    reference = Reference(np.zeros((count, 4)), kind, np.arange(count))
    if fails:
        with pytest.raises(ConfigError, match="raise eval.num_images to 10"):
            train_stage.check_inception_score_images(reference)
    else:
        train_stage.check_inception_score_images(reference)


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
