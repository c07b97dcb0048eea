"""Tests for the trainer (pix2pix.training.loop), its jitter (pix2pix.training.augment) and file formats (pix2pix.training.checkpoint).

Tiny networks (32 px, ngf = ndf = 8) on pairs built with numpy train in about a second per epoch on CPU.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix.training.augment import JitterParams, crop_and_flip, draw_jitter, jitter_pairs, pairs_to_float
from pix2pix.training.checkpoint import CHECKPOINT_FILE, GENERATOR_FILE, load_checkpoint
from pix2pix.training.generator_file import load_generator
from pix2pix.errors import ConfigError, DataError, TrainingError
from pix2pix.training.model import InferenceMode, ModelConfig, build_generator, inference_view
from pix2pix.data.palette import CAR_PALETTE
from pix2pix.training.loop import (
    SAMPLES_DIR,
    EpochReport,
    ProgressInfo,
    TrainConfig,
    TrainingInterrupted,
    lr_at_epoch,
    train,
)

SIZE = 32


def tiny_config(**overrides: object) -> TrainConfig:
    """A 32 px pix2pix small enough for CPU tests, deterministic."""
    settings: dict = {"model": ModelConfig(SIZE, ngf=8, ndf=8), "batch_size": 4, "epochs": 1, "deterministic": True}
    settings.update(overrides)
    return TrainConfig(**settings)


def block_pairs(count: int, seed: int = 0) -> np.ndarray:
    """uint8 ``(count, 2, 32, 32, 3)`` pairs: A = random 4×4 blocks of saturated colours, B = A inverted."""
    blocks = np.random.default_rng(seed).integers(0, 2, (count, 4, 4, 3), dtype=np.uint8) * 255
    a = blocks.repeat(SIZE // 4, axis=1).repeat(SIZE // 4, axis=2)
    return np.stack([a, 255 - a], axis=1)


# --- learning-rate schedule -------------------------------------------------------------------------------


@pytest.mark.parametrize(("epoch", "expected"), [(1, 2e-4), (100, 2.0e-4), (101, 1.98e-4), (200, 1.98e-6)])
def test_lr_schedule_matches_paper_oracles(epoch: int, expected: float) -> None:
    assert lr_at_epoch(epoch, 100, 100, 2e-4) == pytest.approx(expected, rel=1e-3)


def test_lr_schedule_never_reaches_zero() -> None:
    assert min(lr_at_epoch(epoch, 3, 5, 1e-3) for epoch in range(1, 9)) > 0


def test_lr_schedule_without_decay_is_constant() -> None:
    assert {lr_at_epoch(epoch, 4, 0, 1e-3) for epoch in range(1, 5)} == {1e-3}


@pytest.mark.parametrize("epoch", [0, 9])
def test_lr_schedule_rejects_epochs_outside_the_run(epoch: int) -> None:
    with pytest.raises(ConfigError, match=f"epoch {epoch}"):
        lr_at_epoch(epoch, 4, 4, 1e-3)


# --- configuration and inputs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [({"direction": "AtoC"}, "direction"), ({"gan_loss": "wgan"}, "gan_loss"), ({"batch_size": 0}, "batch_size"),
     ({"lr": -1.0}, "lr"), ({"amp": "fp8"}, "amp"), ({"jitter": "yes"}, "jitter")],
)
def test_invalid_config_value_raises_config_error_naming_it(override: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        tiny_config(**override)


def test_config_round_trips_through_dict() -> None:
    cfg = tiny_config(direction="BtoA", epochs_decay=3)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_pairs_of_another_size_raise_data_error(tmp_path: Path) -> None:
    pairs = np.zeros((4, 2, 64, 64, 3), dtype=np.uint8)
    with pytest.raises(DataError, match="64x64"):
        train(tiny_config(), pairs, pairs, tmp_path)


def test_fewer_pairs_than_batch_size_raise_data_error(tmp_path: Path) -> None:
    pairs = block_pairs(3)
    with pytest.raises(DataError, match="batch_size 4"):
        train(tiny_config(), pairs, pairs, tmp_path)


# --- jitter -------------------------------------------------------------------------------------------------


def test_crop_and_flip_equals_slicing_each_sample() -> None:
    images = torch.randn(3, 6, 36, 36)
    params = JitterParams(torch.tensor([0, 4, 2]), torch.tensor([1, 0, 4]), torch.tensor([False, True, True]))
    cropped = crop_and_flip(images, params, (32, 32))
    for i in range(3):
        top, left = int(params.top[i]), int(params.left[i])
        expected = images[i, :, top : top + 32, left : left + 32]
        assert torch.equal(cropped[i], expected.flip(-1) if params.flip[i] else expected)


def test_jitter_applies_the_same_crop_and_flip_to_a_and_b() -> None:
    a, _ = pairs_to_float(torch.from_numpy(block_pairs(4)))
    params = draw_jitter(4, (SIZE, SIZE), torch.Generator().manual_seed(0), jitter=True, flip=True)
    jittered_a, jittered_b = jitter_pairs(a, a.clone(), params, jitter=True, mask_input=False)
    assert torch.equal(jittered_a, jittered_b)
    assert not torch.equal(jittered_a, a)


def test_mask_input_resize_keeps_only_palette_colours() -> None:
    indices = np.random.default_rng(0).integers(0, len(CAR_PALETTE), (2, SIZE, SIZE))
    mask = np.asarray(CAR_PALETTE, dtype=np.uint8)[indices]
    a, b = pairs_to_float(torch.from_numpy(np.stack([mask, mask], axis=1)))
    params = draw_jitter(2, (SIZE, SIZE), torch.Generator().manual_seed(0), jitter=True, flip=True)
    jittered_a, jittered_b = jitter_pairs(a, b, params, jitter=True, mask_input=True)
    palette = {tuple(colour) for colour in np.asarray(CAR_PALETTE)}

    def colours(images: torch.Tensor) -> set[tuple[int, ...]]:
        pixels = ((images + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).reshape(-1, 3)
        return {tuple(pixel) for pixel in pixels.tolist()}

    assert colours(jittered_a) <= palette
    assert not colours(jittered_b) <= palette  # the photo side is resized bicubically


# --- training -----------------------------------------------------------------------------------------------


def test_training_lowers_l1(tmp_path: Path) -> None:
    pairs = block_pairs(16)
    cfg = tiny_config(epochs=4, lr=1e-3)
    result = train(cfg, pairs, pairs[:2], tmp_path)
    losses = [entry["loss_l1"] for entry in result.history]
    assert [entry["epoch"] for entry in result.history] == [1, 2, 3, 4]
    assert losses[-1] < 0.95 * losses[0]


def test_sample_grid_shows_input_output_target_per_sample(tmp_path: Path) -> None:
    pairs = block_pairs(8)
    train(tiny_config(epochs=2, sample_count=3), pairs, pairs, tmp_path)
    paths = sorted((tmp_path / SAMPLES_DIR).iterdir())
    assert [path.name for path in paths] == ["epoch_001.png", "epoch_002.png"]
    grid = np.asarray(Image.open(paths[-1]))
    assert grid.shape == (3 * SIZE, 3 * SIZE, 3)
    rows = grid.reshape(3, SIZE, 3 * SIZE, 3)
    assert np.array_equal(rows[:, :, :SIZE], pairs[:3, 0])
    assert np.array_equal(rows[:, :, 2 * SIZE :], pairs[:3, 1])


def test_b_to_a_direction_swaps_input_and_target(tmp_path: Path) -> None:
    pairs = block_pairs(4)
    train(tiny_config(direction="BtoA", sample_count=1), pairs, pairs, tmp_path)
    grid = np.asarray(Image.open(tmp_path / SAMPLES_DIR / "epoch_001.png"))
    assert np.array_equal(grid[:, :SIZE], pairs[0, 1])
    assert np.array_equal(grid[:, 2 * SIZE :], pairs[0, 0])


def test_generator_file_reproduces_the_trained_generator(tmp_path: Path) -> None:
    pairs = block_pairs(4)
    result = train(tiny_config(direction="BtoA"), pairs, pairs[:1], tmp_path)
    loaded, model_cfg, meta = load_generator(tmp_path / GENERATOR_FILE, "cpu")
    assert model_cfg == tiny_config().model
    assert meta == {"direction": "BtoA", "inference": InferenceMode(), "epoch": 1, "description": None}
    inputs = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    outputs = []
    for generator in (result.generator, loaded):
        torch.manual_seed(0)  # the same dropout masks for both
        with torch.no_grad():
            outputs.append(inference_view(generator, meta["inference"])(inputs))
    assert torch.equal(outputs[0], outputs[1])


def test_generator_file_loads_with_weights_only(tmp_path: Path) -> None:
    pairs = block_pairs(4)
    train(tiny_config(), pairs, pairs[:0], tmp_path)
    data = torch.load(tmp_path / GENERATOR_FILE, weights_only=True)
    assert data["model_config"] == tiny_config().model.to_dict()


def test_missing_generator_file_raises_data_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="generator.pt"):
        load_generator(tmp_path / GENERATOR_FILE, "cpu")


def test_corrupt_generator_file_raises_training_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / GENERATOR_FILE
    path.write_bytes(b"not a torch file")
    with pytest.raises(TrainingError, match="generator.pt"):
        load_generator(path, "cpu")


def test_epoch_report_reaches_callback_and_its_dict_joins_history(tmp_path: Path) -> None:
    reports: list[EpochReport] = []

    def on_epoch_end(report: EpochReport) -> dict:
        reports.append(report)
        assert report.generator.training
        return {"fid": 12.5}

    pairs = block_pairs(8)
    result = train(tiny_config(epochs=2), pairs, pairs[:2], tmp_path, on_epoch_end=on_epoch_end)
    assert [report.epoch for report in reports] == [1, 2]
    assert reports[0].sample_grid == tmp_path / SAMPLES_DIR / "epoch_001.png"
    assert all(report.img_per_s > 0 and report.lr == 2e-4 for report in reports)
    assert [entry["fid"] for entry in result.history] == [12.5, 12.5]
    assert load_checkpoint(tmp_path / CHECKPOINT_FILE, "cpu")["history"] == result.history


def test_untrained_generator_is_reported_as_epoch_0_before_training(tmp_path: Path) -> None:
    reports: list[EpochReport] = []
    initial_outputs: list[torch.Tensor] = []
    inputs = torch.rand(2, 3, SIZE, SIZE) * 2 - 1

    def on_epoch_end(report: EpochReport) -> dict:
        reports.append(report)
        if report.epoch == 0:
            with torch.no_grad():
                initial_outputs.append(inference_view(report.generator, InferenceMode(dropout=False))(inputs))
        return {"fid": 100.0 - report.epoch}

    pairs = block_pairs(8)
    result = train(tiny_config(epochs=2), pairs, pairs[:2], tmp_path, on_epoch_end=on_epoch_end, evaluate_untrained=True)
    assert [report.epoch for report in reports] == [0, 1, 2]
    untrained = reports[0]
    assert (untrained.loss_g, untrained.loss_l1, untrained.lr, untrained.img_per_s, untrained.seconds) == (None,) * 5
    assert untrained.sample_grid == tmp_path / SAMPLES_DIR / "epoch_000.png" and untrained.sample_grid.is_file()
    assert [(entry["epoch"], entry["fid"]) for entry in result.history] == [(0, 100.0), (1, 99.0), (2, 98.0)]
    # Epoch 0 saw the initial weights (a fresh run with the same seed has them), not trained ones.
    torch.manual_seed(tiny_config().seed)
    fresh = build_generator(tiny_config().model)
    with torch.no_grad():
        assert torch.equal(initial_outputs[0], inference_view(fresh, InferenceMode(dropout=False))(inputs))


def test_reporting_the_untrained_generator_changes_no_trained_weight(tmp_path: Path) -> None:
    def evaluate_like_the_stage(report: EpochReport) -> dict:
        # Test-time passes with dropout draw from the global RNG, as the per-epoch evaluation does.
        with torch.no_grad():
            inference_view(report.generator, InferenceMode())(torch.rand(2, 3, SIZE, SIZE) * 2 - 1)
        return {"fid": 1.0}

    pairs = block_pairs(8)
    plain = train(tiny_config(epochs=2), pairs, pairs[:2], tmp_path / "plain")
    reported = train(tiny_config(epochs=2), pairs, pairs[:2], tmp_path / "reported", evaluate_untrained=True,
                     on_epoch_end=evaluate_like_the_stage)
    for name, weight in plain.generator.state_dict().items():
        assert torch.equal(weight, reported.generator.state_dict()[name]), name


def test_a_resumed_run_does_not_report_epoch_0_again(tmp_path: Path) -> None:
    pairs = block_pairs(8)
    train(tiny_config(epochs=1), pairs, pairs[:2], tmp_path, evaluate_untrained=True, on_epoch_end=lambda r: {})
    epochs: list[int] = []
    result = train(tiny_config(epochs=2), pairs, pairs[:2], tmp_path, evaluate_untrained=True,
                   on_epoch_end=lambda report: epochs.append(report.epoch) or {})
    assert epochs == [2]
    assert [entry["epoch"] for entry in result.history] == [0, 1, 2]


def test_progress_reports_every_log_step(tmp_path: Path) -> None:
    infos = []
    pairs = block_pairs(8)
    train(tiny_config(epochs=2, log_every_steps=3), pairs, pairs[:0], tmp_path, progress=infos.append)
    assert [(info.epoch, info.step_in_epoch, info.global_step) for info in infos] == [(2, 1, 3)]
    assert infos[0].img_per_s == pytest.approx(4 * infos[0].it_per_s)


# --- failures -------------------------------------------------------------------------------------------------


def test_diverging_loss_raises_training_error_and_writes_nothing(tmp_path: Path) -> None:
    # An absurd learning rate blows D up in its first update, so G's next loss is NaN.
    pairs = block_pairs(8)
    with pytest.raises(TrainingError, match="non-finite at epoch 1 step 1.*none"):
        train(tiny_config(lr=1e30, log_every_steps=1), pairs, pairs[:1], tmp_path)
    assert not (tmp_path / CHECKPOINT_FILE).exists()
    assert not (tmp_path / GENERATOR_FILE).exists()


def test_non_finite_weights_keep_the_last_good_checkpoint(tmp_path: Path) -> None:
    def poison_in_epoch_2(report: EpochReport) -> None:
        if report.epoch == 2:
            with torch.no_grad():
                next(report.generator.parameters()).fill_(float("nan"))

    pairs = block_pairs(8)
    with pytest.raises(TrainingError, match=r"epoch 2.*checkpoint.pt \(epoch 1\)"):
        train(tiny_config(epochs=3), pairs, pairs[:1], tmp_path, on_epoch_end=poison_in_epoch_2)
    checkpoint = load_checkpoint(tmp_path / CHECKPOINT_FILE, "cpu")
    assert checkpoint["epoch"] == 1
    assert all(torch.isfinite(value).all() for value in checkpoint["generator"].values())


@pytest.mark.parametrize(
    ("signal_step", "message", "checkpoint_epoch"),
    # 3 steps per epoch; the signal is seen at the next step boundary.
    [(1, "SIGTERM in epoch 2", 1), (2, "SIGTERM after epoch 2", 2)],
)
def test_sigterm_stops_at_a_step_boundary_keeping_finished_epochs(
    tmp_path: Path, signal_step: int, message: str, checkpoint_epoch: int
) -> None:
    def terminate_in_epoch_2(info: ProgressInfo) -> None:
        if (info.epoch, info.step_in_epoch) == (2, signal_step):
            os.kill(os.getpid(), signal.SIGTERM)

    handler_before = signal.getsignal(signal.SIGTERM)
    pairs = block_pairs(12)
    with pytest.raises(TrainingInterrupted, match=message):
        train(tiny_config(epochs=3, log_every_steps=1), pairs, pairs[:0], tmp_path, progress=terminate_in_epoch_2)
    assert load_checkpoint(tmp_path / CHECKPOINT_FILE, "cpu")["epoch"] == checkpoint_epoch
    assert signal.getsignal(signal.SIGTERM) is handler_before


def test_changed_config_starts_fresh_and_says_why(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pairs = block_pairs(8)
    train(tiny_config(), pairs, pairs[:0], tmp_path)
    with caplog.at_level(logging.WARNING, logger="pix2pix.training.loop"):
        result = train(tiny_config(lr=1e-3), pairs, pairs[:0], tmp_path)
    assert result.resumed_from_epoch == 0
    assert "config differs in lr" in result.fresh_start_reason
    assert result.fresh_start_reason in caplog.text
