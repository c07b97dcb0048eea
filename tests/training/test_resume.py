"""Resuming training (pix2pix.training.loop): exact after a SIGKILL at an epoch's end or inside one, from the newest
readable checkpoint, and only when the checkpoint continues this run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pix2pix.training.checkpoint_store import CHECKPOINTS_DIR, DISCARDED_DIR, list_checkpoints
from pix2pix.training.model import ModelConfig
from pix2pix.training.loop import TrainConfig, train
from pix2pix.training.snapshots import SNAPSHOTS_DIR

# Trains with the config and pairs files given on the command line. With PAUSE_MARKER set it touches that
# file at step PAUSE_STEP of epoch 2 and then waits, so the test can SIGKILL it in the middle of epoch 2.
CHILD_SCRIPT = """
import json, os, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from pix2pix.data.store import open_pairs
from pix2pix.training.loop import TrainConfig, train

cfg = TrainConfig.from_dict(json.loads(Path(sys.argv[1]).read_text()))
pairs = open_pairs(Path(sys.argv[2]))
marker = os.environ.get("PAUSE_MARKER")
pause_step = int(os.environ.get("PAUSE_STEP", "1"))

def progress(info):
    if marker and info.epoch == 2 and info.step_in_epoch == pause_step:
        Path(marker).touch()
        time.sleep(120)

result = train(cfg, pairs, Path(sys.argv[3]), progress=progress)
print(json.dumps({"resumed_from_epoch": result.resumed_from_epoch}))
"""
# Wall-clock fields differ between runs of the same computation.
TIMING_KEYS = ("seconds", "img_per_s")
CHILD_TIMEOUT_S = 120


def tiny_config(**overrides: Any) -> TrainConfig:
    """A 32 px pix2pix small enough for CPU tests, deterministic, with dropout and jitter on."""
    settings: dict[str, Any] = {
        "model": ModelConfig(32, ngf=8, ndf=8), "batch_size": 4, "epochs": 1, "deterministic": True,
        "amp": "off",  # fp32 on every CPU (amp auto takes bf16 where the CPU has native bf16 units)
    }
    settings.update(overrides)
    return TrainConfig(**settings)


def random_pairs(count: int, seed: int = 0) -> np.ndarray:
    """uint8 ``(count, 2, 32, 32, 3)`` noise pairs."""
    return np.random.default_rng(seed).integers(0, 256, (count, 2, 32, 32, 3), dtype=np.uint8)


def assert_identical(a: Any, b: Any, where: str = "checkpoint") -> None:
    """Recursively require equal containers and bit-identical tensors (timings in history excepted)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, Mapping):
        keys = set(a) - set(TIMING_KEYS)
        assert keys == set(b) - set(TIMING_KEYS), where
        for key in keys:
            assert_identical(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for index, (item_a, item_b) in enumerate(zip(a, b)):
            assert_identical(item_a, item_b, f"{where}[{index}]")
    else:
        assert a == b, where


class ChildRun:
    """Files for, and launches of, the training child process."""

    def __init__(self, tmp_path: Path, cfg: TrainConfig, pairs: np.ndarray) -> None:
        self.script = tmp_path / "train_child.py"
        self.script.write_text(CHILD_SCRIPT)
        self.config = tmp_path / "config.json"
        self.config.write_text(json.dumps(cfg.to_dict()))
        self.pairs = tmp_path / "pairs.npy"
        np.save(self.pairs, pairs)

    def start(self, out_dir: Path, **env: str) -> subprocess.Popen:
        command = [sys.executable, str(self.script), str(self.config), str(self.pairs), str(out_dir)]
        return subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.PIPE, text=True)

    def run(self, out_dir: Path) -> dict[str, Any]:
        process = self.start(out_dir)
        stdout, _ = process.communicate(timeout=CHILD_TIMEOUT_S)
        assert process.returncode == 0
        return json.loads(stdout.strip().splitlines()[-1])


def wait_for(path: Path, process: subprocess.Popen) -> None:
    """Block until ``path`` exists (failing if ``process`` ends first or it takes too long)."""
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    while not path.exists():
        assert process.poll() is None, "the child ended before reaching epoch 2"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def run_files(out_dir: Path) -> dict[str, Any]:
    """Every snapshot and the newest checkpoint of a run, loaded."""
    files = {path.name: path for path in sorted((out_dir / SNAPSHOTS_DIR).glob("*.pt"))}
    files["newest checkpoint"] = list_checkpoints(out_dir / CHECKPOINTS_DIR)[0]
    return {name: torch.load(path, weights_only=True) for name, path in files.items()}


@pytest.mark.parametrize(("every", "pause_step", "resumed_at"), [(0, 1, (1, 0)), (1, 3, (2, 2))])
def test_resume_after_sigkill_is_bit_identical_to_a_straight_run(
    tmp_path: Path, every: int, pause_step: int, resumed_at: tuple[int, int]
) -> None:
    """Killed in epoch 2 (4 steps): from its end-of-epoch-1 checkpoint, or mid-epoch after step 2 of epoch 2."""
    cfg = tiny_config(epochs=2, log_every_steps=1, checkpoint_every_steps=every, snapshot_untrained=True)
    child = ChildRun(tmp_path, cfg, random_pairs(16))
    assert child.run(tmp_path / "straight") == {"resumed_from_epoch": 0}

    marker = tmp_path / "in_epoch_2"
    process = child.start(tmp_path / "killed", PAUSE_MARKER=str(marker), PAUSE_STEP=str(pause_step))
    wait_for(marker, process)
    process.kill()
    process.communicate()
    newest = torch.load(list_checkpoints(tmp_path / "killed" / CHECKPOINTS_DIR)[0], weights_only=True)
    assert (newest["epoch"], newest["step_in_epoch"]) == resumed_at
    assert not (tmp_path / "killed" / SNAPSHOTS_DIR / "epoch_0002.pt").exists()

    assert child.run(tmp_path / "killed") == {"resumed_from_epoch": 1}
    straight, resumed = run_files(tmp_path / "straight"), run_files(tmp_path / "killed")
    assert set(straight) == {"epoch_0000.pt", "epoch_0001.pt", "epoch_0002.pt", "newest checkpoint"}
    assert_identical(straight, resumed, "run")


def test_truncated_newest_checkpoint_falls_back_to_the_previous_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pairs = random_pairs(8)
    train(tiny_config(epochs=2), pairs, tmp_path)
    newest, previous = list_checkpoints(tmp_path / CHECKPOINTS_DIR)
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 3])  # a crash of the node mid-write
    result = train(tiny_config(epochs=2), pairs, tmp_path)
    assert (result.resumed_from_epoch, result.epochs_run, result.fresh_start_reason) == (1, 1, None)
    warnings = [record.getMessage() for record in caplog.records if "is unusable" in record.getMessage()]
    assert len(warnings) == 1 and newest.name in warnings[0] and f"resuming from {previous.name}" in warnings[0]
    assert len(warnings[0]) < 400


def test_only_the_newest_checkpoints_are_kept(tmp_path: Path) -> None:
    train(tiny_config(epochs=3, keep_checkpoints=2, checkpoint_every_steps=1), random_pairs(8), tmp_path)
    kept = [path.name for path in list_checkpoints(tmp_path / CHECKPOINTS_DIR)]
    assert kept == ["epoch_0003_step_000000006.pt", "epoch_0003_step_000000005.pt"]


def test_extending_epochs_resumes_and_keeps_history(tmp_path: Path) -> None:
    pairs = random_pairs(8)
    first = train(tiny_config(epochs=1), pairs, tmp_path)
    extended = train(tiny_config(epochs=2), pairs, tmp_path)
    assert (extended.resumed_from_epoch, extended.epochs_run, extended.fresh_start_reason) == (1, 1, None)
    assert [entry["epoch"] for entry in extended.history] == [1, 2]
    assert extended.history[0] == first.history[0]


def test_finished_run_of_the_same_training_code_trains_nothing(tmp_path: Path) -> None:
    pairs = random_pairs(8)
    train(tiny_config(), pairs, tmp_path)
    snapshot = tmp_path / SNAPSHOTS_DIR / "epoch_0001.pt"
    before = (snapshot.stat().st_mtime_ns, snapshot.read_bytes())
    # Only settings that change no weight differ: nothing to train, nothing rewritten.
    again = train(tiny_config(log_every_steps=7, keep_checkpoints=3), pairs, tmp_path)
    assert (again.resumed_from_epoch, again.epochs_run) == (1, 0)
    assert (snapshot.stat().st_mtime_ns, snapshot.read_bytes()) == before


def test_finished_run_of_other_training_code_trains_again_and_keeps_the_old_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = random_pairs(8)
    train(tiny_config(), pairs, tmp_path)
    monkeypatch.setattr("pix2pix.training.resume.training_code_hash", lambda: "edited")
    again = train(tiny_config(), pairs, tmp_path)
    assert again.epochs_run == 1 and "training code changed" in again.fresh_start_reason
    assert (again.discarded_to / SNAPSHOTS_DIR / "epoch_0001.pt").is_file()
    assert again.discarded_to.parent == tmp_path / DISCARDED_DIR


@pytest.mark.parametrize(
    ("first", "second", "reason"),
    [
        # Epoch 2 trained at the full rate, the new schedule would decay it.
        ({"epochs": 2}, {"epochs": 1, "epochs_decay": 2}, "other learning rates"),
        ({"epochs": 2}, {"epochs": 1}, "more than the 1 asked for"),
        ({"epochs": 1}, {"epochs": 1, "model": ModelConfig(32, ngf=16, ndf=8)}, "config differs in model.ngf"),
    ],
)
def test_checkpoint_that_does_not_continue_the_run_is_not_resumed(
    tmp_path: Path, first: dict, second: dict, reason: str
) -> None:
    pairs = random_pairs(8)
    train(tiny_config(**first), pairs, tmp_path)
    result = train(tiny_config(**second), pairs, tmp_path)
    assert result.resumed_from_epoch == 0
    assert reason in result.fresh_start_reason


def test_checkpoint_of_other_pairs_is_not_resumed(tmp_path: Path) -> None:
    train(tiny_config(), random_pairs(8, seed=0), tmp_path)
    result = train(tiny_config(), random_pairs(8, seed=1), tmp_path)
    assert result.resumed_from_epoch == 0
    assert "different pairs" in result.fresh_start_reason

