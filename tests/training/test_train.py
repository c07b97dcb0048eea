"""Tests for the trainer (pix2pix.training.loop), its jitter (pix2pix.training.augment) and the files it writes
(generator snapshots, pix2pix.training.snapshots; checkpoints, pix2pix.training.checkpoint_store).

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

from pix2pix.data.palette import CAR_PALETTE
from pix2pix.errors import ConfigError, DataError, TrainingError
from pix2pix.training.augment import JitterParams, crop_and_flip, draw_jitter, jitter_pairs, pairs_to_float
from pix2pix.training.checkpoint import load_checkpoint, load_generator
from pix2pix.training.checkpoint_store import CHECKPOINTS_DIR, list_checkpoints
from pix2pix.training.loop import HISTORY_KEYS, ProgressInfo, TrainConfig, TrainingInterrupted, train
from pix2pix.training.model import InferenceMode, ModelConfig, build_generator, inference_view
from pix2pix.training.schedule import lr_at_epoch
from pix2pix.training.snapshots import SNAPSHOTS_DIR, list_snapshots, snapshot_file
from pix2pix.training.trainer import RankTrainer

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
        train(tiny_config(), pairs, tmp_path)


def test_fewer_pairs_than_batch_size_raise_data_error(tmp_path: Path) -> None:
    pairs = block_pairs(3)
    with pytest.raises(DataError, match="batch_size 4"):
        train(tiny_config(), pairs, tmp_path)


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


