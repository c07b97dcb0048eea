"""Resuming training (pix2pix.training.loop): exact after a SIGKILL, and only when the checkpoint continues this run."""

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

from pix2pix.training.checkpoint import CHECKPOINT_FILE, GENERATOR_FILE, load_checkpoint
from pix2pix.training.model import ModelConfig
from pix2pix.training.loop import TrainConfig, train

# Trains with the config and pairs files given on the command line. With PAUSE_MARKER set it touches that
# file once epoch 2 has started and then waits, so the test can SIGKILL it in the middle of epoch 2.
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

def progress(info):
    if marker and info.epoch == 2:
        Path(marker).touch()
        time.sleep(120)

result = train(cfg, pairs, pairs[:2], Path(sys.argv[3]), progress=progress)
print(json.dumps({"resumed_from_epoch": result.resumed_from_epoch}))
"""
# Wall-clock fields differ between runs of the same computation.
TIMING_KEYS = ("seconds", "img_per_s")
CHILD_TIMEOUT_S = 120


def tiny_config(**overrides: Any) -> TrainConfig:
    """A 32 px pix2pix small enough for CPU tests, deterministic, with dropout and jitter on."""
    settings: dict[str, Any] = {
        "model": ModelConfig(32, ngf=8, ndf=8), "batch_size": 4, "epochs": 1, "deterministic": True,
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


def test_resume_after_sigkill_is_bit_identical_to_a_straight_run(tmp_path: Path) -> None:
    child = ChildRun(tmp_path, tiny_config(epochs=2, log_every_steps=1), random_pairs(8))
    assert child.run(tmp_path / "straight") == {"resumed_from_epoch": 0}

    marker = tmp_path / "in_epoch_2"
    process = child.start(tmp_path / "killed", PAUSE_MARKER=str(marker))
    wait_for(marker, process)
    process.kill()
    process.communicate()
    assert load_checkpoint(tmp_path / "killed" / CHECKPOINT_FILE, "cpu")["epoch"] == 1
    assert not (tmp_path / "killed" / GENERATOR_FILE).exists()

    assert child.run(tmp_path / "killed") == {"resumed_from_epoch": 1}
    for name in (CHECKPOINT_FILE, GENERATOR_FILE):
        straight = torch.load(tmp_path / "straight" / name, weights_only=True)
        resumed = torch.load(tmp_path / "killed" / name, weights_only=True)
        assert_identical(straight, resumed, name)


def test_extending_epochs_resumes_and_keeps_history(tmp_path: Path) -> None:
    pairs = random_pairs(8)
    first = train(tiny_config(epochs=1), pairs, pairs[:0], tmp_path)
    extended = train(tiny_config(epochs=2), pairs, pairs[:0], tmp_path)
    assert (extended.resumed_from_epoch, extended.epochs_run, extended.fresh_start_reason) == (1, 1, None)
    assert [entry["epoch"] for entry in extended.history] == [1, 2]
    assert extended.history[0] == first.history[0]


def test_finished_run_resumes_without_training(tmp_path: Path) -> None:
    pairs = random_pairs(8)
    train(tiny_config(), pairs, pairs[:0], tmp_path)
    (tmp_path / GENERATOR_FILE).unlink()
    again = train(tiny_config(), pairs, pairs[:0], tmp_path)
    assert (again.resumed_from_epoch, again.epochs_run) == (1, 0)
    assert (tmp_path / GENERATOR_FILE).exists()


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
    train(tiny_config(**first), pairs, pairs[:0], tmp_path)
    result = train(tiny_config(**second), pairs, pairs[:0], tmp_path)
    assert result.resumed_from_epoch == 0
    assert reason in result.fresh_start_reason


def test_checkpoint_of_other_pairs_is_not_resumed(tmp_path: Path) -> None:
    train(tiny_config(), random_pairs(8, seed=0), random_pairs(0), tmp_path)
    result = train(tiny_config(), random_pairs(8, seed=1), random_pairs(0), tmp_path)
    assert result.resumed_from_epoch == 0
    assert "different pairs" in result.fresh_start_reason
