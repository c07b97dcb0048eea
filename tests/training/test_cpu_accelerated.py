"""The GPU code paths run on CPU (``accelerate_cpu``): bf16 and fp16 autocast, the gradient scaler, channels_last
and torch.compile (Inductor), each through real epochs, scoring of the snapshots, checkpoint and resume, at tiny
sizes."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

from pix2pix.evaluation.image_metrics import IS_SPLITS
from pix2pix.evaluation.scoring import compute_reference, evaluate_generator, translate_batches
from pix2pix.evaluation.standin import standin_inception
from pix2pix.training.generator_file import load_generator
from pix2pix.training.checkpoint_store import CHECKPOINTS_DIR, list_checkpoints
from pix2pix.training.loop import train
from pix2pix.training.snapshots import SNAPSHOTS_DIR, snapshot_file
from tests.training.test_resume import assert_identical, random_pairs, tiny_config


def newest_checkpoint(out_dir: Path) -> dict[str, Any]:
    """The newest checkpoint of the run in ``out_dir``."""
    return torch.load(list_checkpoints(out_dir / CHECKPOINTS_DIR)[0], weights_only=True)


def test_bf16_autocast_trains_evaluates_and_resumes_exactly(tmp_path: Path) -> None:
    pairs, test_pairs = random_pairs(8), random_pairs(IS_SPLITS, seed=1)
    extractor = standin_inception("cpu")
    reference = compute_reference(extractor, test_pairs[:, 1], np.arange(IS_SPLITS))
    scores: list[dict[str, Any]] = []

    def evaluate(epoch: int, path: Path) -> None:  # as the evaluate stage scores a snapshot
        generator, _, meta = load_generator(path, "cpu")
        metrics, _ = evaluate_generator(generator, test_pairs[:, 0], test_pairs[:, 1], extractor, reference,
                                        torch.device("cpu"), meta["inference"], 0)
        scores.append(metrics)

    bf16 = tiny_config(accelerate_cpu=True, amp="auto")
    first = train(bf16, pairs, tmp_path / "resumed", on_snapshot=evaluate)
    resumed = train(tiny_config(accelerate_cpu=True, amp="auto", epochs=2), pairs, tmp_path / "resumed")
    straight = train(tiny_config(accelerate_cpu=True, amp="auto", epochs=2), pairs, tmp_path / "straight")
    fp32 = train(tiny_config(), pairs, tmp_path / "fp32")

    assert resumed.resumed_from_epoch == 1
    assert all(math.isfinite(row[key]) for row in straight.history for key in ("loss_g", "loss_d", "loss_l1"))
    assert first.history[0]["loss_l1"] != fp32.history[0]["loss_l1"]  # bf16 really ran
    assert math.isfinite(scores[0]["fid"]) and scores[0]["is_mean"] >= 1.0 and 0 <= scores[0]["ssim"] <= 1
    assert len(scores) == 1
    # assert_identical leaves out the wall-clock fields of the history and the snapshots' train stats.
    assert_identical(newest_checkpoint(tmp_path / "straight"), newest_checkpoint(tmp_path / "resumed"))
    final = [snapshot_file(tmp_path / run / SNAPSHOTS_DIR, 2) for run in ("straight", "resumed")]
    assert_identical(*(torch.load(path, weights_only=True) for path in final), "snapshot")


def test_fp16_autocast_with_gradient_scaler_trains_and_resumes_its_scale(tmp_path: Path) -> None:
    pairs = random_pairs(8)
    fp16 = {"accelerate_cpu": True, "amp": "fp16"}
    train(tiny_config(**fp16), pairs, tmp_path / "resumed")
    after_one = newest_checkpoint(tmp_path / "resumed")
    # The same checkpoint without the scaler's state: epoch 2 then starts from a fresh scaler.
    shutil.copytree(tmp_path / "resumed", tmp_path / "fresh_scaler")
    fresh_scaler = list_checkpoints(tmp_path / "fresh_scaler" / CHECKPOINTS_DIR)[0]
    torch.save({**after_one, "scaler": {}}, fresh_scaler)
    results = {run: train(tiny_config(**fp16, epochs=2), pairs, tmp_path / run)
               for run in ("resumed", "fresh_scaler", "straight")}
    after_two = {run: newest_checkpoint(tmp_path / run) for run in results}

    assert [result.resumed_from_epoch for result in results.values()] == [1, 1, 0]
    assert all(math.isfinite(row["loss_g"]) and math.isfinite(row["loss_d"]) for row in results["resumed"].history)
    # Epoch 1 overflows fp16 at the initial scale 2^16: the scaler skips those steps and lowers the scale.
    assert after_one["scaler"]["scale"] < 2.0**16
    # Epoch 2 continues from the saved scale, as the straight run does; from a fresh scaler it ends elsewhere.
    scalers = {run: checkpoint["scaler"] for run, checkpoint in after_two.items()}
    assert scalers["resumed"] == scalers["straight"] != scalers["fresh_scaler"]
    resumed = after_two["resumed"]["generator"]
    assert any(not torch.equal(value, resumed[key]) for key, value in after_one["generator"].items())


@pytest.mark.slow  # Inductor builds C++ kernels for 3 networks forward and backward: ~1-2.5 minutes on 2 cores
def test_inductor_compile_runs_epochs_with_snapshots_scored_in_process_without_recompiling(tmp_path: Path) -> None:
    pairs = random_pairs(8)
    torch._dynamo.reset()
    counters.clear()
    graphs: list[int] = []

    def evaluate(epoch: int, path: Path) -> None:
        generator, _, meta = load_generator(path, "cpu")
        translate_batches(generator, pairs[:4, 0], torch.device("cpu"), meta["inference"], 0)
        graphs.append(counters["stats"]["unique_graphs"])

    cfg = tiny_config(accelerate_cpu=True, amp="auto", compile=True, epochs=2)
    result = train(cfg, pairs, tmp_path, on_snapshot=evaluate)

    # One graph per compiled network (G, D on the pair, D alone), captured in epoch 1 and reused after scoring.
    assert graphs == [3, 3]
    assert all(math.isfinite(row["loss_l1"]) for row in result.history)
    assert list(result.snapshots) == [1, 2] and all(path.is_file() for path in result.snapshots.values())


@pytest.fixture(autouse=True)
def _fresh_dynamo() -> None:
    """Compiled code from one test must not be reused (or counted) by another."""
    yield
    torch._dynamo.reset()
