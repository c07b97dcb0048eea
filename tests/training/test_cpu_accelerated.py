"""The GPU code paths run on CPU (``accelerate_cpu``): bf16 and fp16 autocast, the gradient scaler, channels_last
and torch.compile (Inductor), each through real epochs, evaluation, checkpoint and resume, at tiny sizes."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

from pix2pix.evaluation.image_metrics import IS_SPLITS
from pix2pix.evaluation.scoring import compute_reference, evaluate_generator, translate_batches
from pix2pix.evaluation.standin import standin_inception
from pix2pix.training.checkpoint import CHECKPOINT_FILE, GENERATOR_FILE
from pix2pix.training.loop import EpochReport, train
from pix2pix.training.model import InferenceMode
from tests.training.test_resume import assert_identical, random_pairs, tiny_config

STEPS_PER_EPOCH = 2  # 8 pairs, batch 4


def checkpoint_without_history(path: Path) -> dict[str, Any]:
    """The checkpoint's weights and optimizer/scaler states (history holds wall-clock times and callback extras)."""
    checkpoint = torch.load(path, weights_only=True)
    checkpoint.pop("history")
    return checkpoint


def test_bf16_autocast_trains_evaluates_and_resumes_exactly(tmp_path: Path) -> None:
    pairs, test_pairs = random_pairs(8), random_pairs(IS_SPLITS, seed=1)
    extractor = standin_inception("cpu")
    reference = compute_reference(extractor, test_pairs[:, 1], np.arange(IS_SPLITS))
    scores: list[dict[str, Any]] = []

    def evaluate(report: EpochReport) -> None:
        metrics, _ = evaluate_generator(report.generator, test_pairs[:, 0], test_pairs[:, 1], extractor, reference,
                                        torch.device("cpu"), InferenceMode(), 0)
        scores.append(metrics)

    bf16 = tiny_config(accelerate_cpu=True, amp="auto")
    first = train(bf16, pairs, pairs[:2], tmp_path / "resumed", on_epoch_end=evaluate)
    resumed = train(tiny_config(accelerate_cpu=True, amp="auto", epochs=2), pairs, pairs[:0], tmp_path / "resumed")
    straight = train(tiny_config(accelerate_cpu=True, amp="auto", epochs=2), pairs, pairs[:0], tmp_path / "straight")
    fp32 = train(tiny_config(), pairs, pairs[:0], tmp_path / "fp32")

    assert resumed.resumed_from_epoch == 1
    assert all(math.isfinite(row[key]) for row in straight.history for key in ("loss_g", "loss_d", "loss_l1"))
    assert first.history[0]["loss_l1"] != fp32.history[0]["loss_l1"]  # bf16 really ran
    assert math.isfinite(scores[0]["fid"]) and scores[0]["is_mean"] >= 1.0 and 0 <= scores[0]["ssim"] <= 1
    assert_identical(checkpoint_without_history(tmp_path / "straight" / CHECKPOINT_FILE),
                     checkpoint_without_history(tmp_path / "resumed" / CHECKPOINT_FILE))
    assert_identical(torch.load(tmp_path / "straight" / GENERATOR_FILE, weights_only=True),
                     torch.load(tmp_path / "resumed" / GENERATOR_FILE, weights_only=True))


def test_fp16_autocast_with_gradient_scaler_trains_and_resumes_its_scale(tmp_path: Path) -> None:
    pairs = random_pairs(8)
    train(tiny_config(accelerate_cpu=True, amp="fp16"), pairs, pairs[:2], tmp_path)
    after_one = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
    result = train(tiny_config(accelerate_cpu=True, amp="fp16", epochs=2), pairs, pairs[:2], tmp_path)
    after_two = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)

    assert result.resumed_from_epoch == 1
    assert all(math.isfinite(row["loss_g"]) and math.isfinite(row["loss_d"]) for row in result.history)
    # Epoch 1's steps overflow fp16 at the initial scale 2^16: the scaler skips them and halves the scale twice.
    assert (after_one["scaler"]["scale"], after_one["scaler"]["_growth_tracker"]) == (2.0**14, 0)
    # Epoch 2 starts from the saved scale (a fresh scaler would overflow and halve again) and steps every time.
    assert (after_two["scaler"]["scale"], after_two["scaler"]["_growth_tracker"]) == (2.0**14, STEPS_PER_EPOCH)
    changed = [not torch.equal(value, after_two["generator"][key]) for key, value in after_one["generator"].items()]
    assert any(changed)


@pytest.mark.slow  # Inductor builds C++ kernels for 3 networks forward and backward: ~1-2.5 minutes on 2 cores
def test_inductor_compile_runs_epochs_with_evaluation_without_recompiling(tmp_path: Path) -> None:
    pairs = random_pairs(8)
    torch._dynamo.reset()
    counters.clear()
    graphs: list[int] = []

    def evaluate(report: EpochReport) -> None:
        translate_batches(report.generator, pairs[:4, 0], torch.device("cpu"), InferenceMode(), 0)
        graphs.append(counters["stats"]["unique_graphs"])

    cfg = tiny_config(accelerate_cpu=True, amp="auto", compile=True, epochs=2)
    result = train(cfg, pairs, pairs[:2], tmp_path, on_epoch_end=evaluate)

    # One graph per compiled network (G, D on the pair, D alone), captured in epoch 1 and reused after evaluation.
    assert graphs == [3, 3]
    assert all(math.isfinite(row["loss_l1"]) for row in result.history)
    assert (tmp_path / "samples" / "epoch_002.png").is_file()


@pytest.fixture(autouse=True)
def _fresh_dynamo() -> None:
    """Compiled code from one test must not be reused (or counted) by another."""
    yield
    torch._dynamo.reset()
