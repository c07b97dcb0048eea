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
from pix2pix.training.checkpoint import load_checkpoint
from pix2pix.training.checkpoint_store import CHECKPOINTS_DIR, list_checkpoints
from pix2pix.training.generator_file import load_generator
from pix2pix.training.loop import HISTORY_KEYS, LOSS_COLUMNS, ProgressInfo, TrainConfig, TrainingInterrupted, train
from pix2pix.training.model import InferenceMode, ModelConfig, build_generator, inference_view
from pix2pix.training.schedule import lr_at_epoch
from pix2pix.training.snapshots import SNAPSHOTS_DIR, list_snapshots, snapshot_file
from pix2pix.training.trainer import RankTrainer

SIZE = 32


def tiny_config(**overrides: object) -> TrainConfig:
    """A 32 px pix2pix small enough for CPU tests, deterministic."""
    # fp32 on every CPU (amp auto takes bf16 where the CPU has native bf16 units)
    settings: dict = {"model": ModelConfig(SIZE, ngf=8, ndf=8), "batch_size": 4, "epochs": 1, "deterministic": True,
                      "amp": "off"}
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


# --- training -----------------------------------------------------------------------------------------------


def newest_checkpoint(out_dir: Path) -> dict:
    """The newest checkpoint of the run in ``out_dir``, loaded on CPU."""
    return load_checkpoint(list_checkpoints(out_dir / CHECKPOINTS_DIR)[0], "cpu")


def snapshot_epochs(out_dir: Path) -> list[int]:
    """The epochs of the snapshots in ``out_dir``."""
    return [epoch for epoch, _ in list_snapshots(out_dir / SNAPSHOTS_DIR)]


def all_finite(state: dict) -> bool:
    return all(torch.isfinite(value).all() for value in state.values() if value.is_floating_point())


def test_training_lowers_l1(tmp_path: Path) -> None:
    pairs = block_pairs(16)
    cfg = tiny_config(epochs=4, lr=1e-3)
    result = train(cfg, pairs, tmp_path)
    losses = [entry["loss_l1"] for entry in result.history]
    assert [entry["epoch"] for entry in result.history] == [1, 2, 3, 4]
    assert all(tuple(entry) == HISTORY_KEYS for entry in result.history)
    assert losses[-1] < 0.95 * losses[0]


def test_b_to_a_direction_swaps_input_and_target(tmp_path: Path) -> None:
    # Without jitter (whose nearest resize follows the stored A side) BtoA on the pairs is AtoB on them swapped.
    pairs = block_pairs(8)
    b_to_a = train(tiny_config(direction="BtoA", jitter=False), pairs, tmp_path / "BtoA")
    swapped = train(tiny_config(jitter=False), np.ascontiguousarray(pairs[:, ::-1]), tmp_path / "swapped")
    a_to_b = train(tiny_config(jitter=False), pairs, tmp_path / "AtoB")
    assert b_to_a.history[0]["loss_l1"] == swapped.history[0]["loss_l1"] != a_to_b.history[0]["loss_l1"]
    for name, weight in swapped.generator.state_dict().items():
        assert torch.equal(b_to_a.generator.state_dict()[name], weight), name


def test_generator_snapshot_reproduces_the_trained_generator(tmp_path: Path) -> None:
    pairs = block_pairs(4)
    result = train(tiny_config(direction="BtoA"), pairs, tmp_path)
    assert result.generator_path == snapshot_file(tmp_path / SNAPSHOTS_DIR, 1)
    loaded, model_cfg, meta = load_generator(result.generator_path, "cpu")
    assert model_cfg == tiny_config().model
    assert meta == {"direction": "BtoA", "inference": InferenceMode(), "epoch": 1, "description": None}
    inputs = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    outputs = []
    for generator in (result.generator, loaded):
        torch.manual_seed(0)  # the same dropout masks for both
        with torch.no_grad():
            outputs.append(inference_view(generator, meta["inference"])(inputs))
    assert torch.equal(outputs[0], outputs[1])


def test_run_writes_only_snapshots_and_checkpoints_that_load_with_weights_only(tmp_path: Path) -> None:
    pairs = block_pairs(4)
    result = train(tiny_config(), pairs, tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == [CHECKPOINTS_DIR, SNAPSHOTS_DIR]
    snapshot = torch.load(result.generator_path, weights_only=True)
    assert snapshot["model_config"] == tiny_config().model.to_dict()
    assert snapshot["train_stats"] == {key: result.history[0][key] for key in LOSS_COLUMNS}  # no timings
    checkpoint = torch.load(list_checkpoints(tmp_path / CHECKPOINTS_DIR)[0], weights_only=True)
    assert (checkpoint["epoch"], checkpoint["step_in_epoch"], checkpoint["history"]) == (1, 0, result.history)


def test_missing_generator_file_raises_data_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="epoch_0001.pt"):
        load_generator(snapshot_file(tmp_path / SNAPSHOTS_DIR, 1), "cpu")


def test_corrupt_generator_file_raises_training_error_naming_it(tmp_path: Path) -> None:
    path = snapshot_file(tmp_path, 1)
    path.write_bytes(b"not a torch file")
    with pytest.raises(TrainingError, match="epoch_0001.pt"):
        load_generator(path, "cpu")


def test_on_snapshot_gets_each_snapshot_in_order_once_written(tmp_path: Path) -> None:
    seen: list[tuple[int, Path, int, int | None]] = []

    def on_snapshot(epoch: int, path: Path) -> None:
        data = torch.load(path, weights_only=True)  # complete when the callback runs
        seen.append((epoch, path, data["epoch"], data["train_stats"] and data["train_stats"]["epoch"]))

    pairs = block_pairs(8)
    cfg = tiny_config(epochs=2, epochs_decay=1, snapshot_every=2, snapshot_untrained=True)
    result = train(cfg, pairs, tmp_path, on_snapshot=on_snapshot)
    folder = tmp_path / SNAPSHOTS_DIR
    # Every second epoch, the last, and the untrained generator (no train stats).
    assert seen == [(0, snapshot_file(folder, 0), 0, None), (2, snapshot_file(folder, 2), 2, 2),
                    (3, snapshot_file(folder, 3), 3, 3)]
    assert result.snapshots == {epoch: path for epoch, path, _, _ in seen}
    assert list_snapshots(folder) == sorted(result.snapshots.items())
    assert result.generator_path == snapshot_file(folder, 3)
    assert [entry["lr"] for entry in result.history] == [lr_at_epoch(epoch, 2, 1, 2e-4) for epoch in (1, 2, 3)]
    assert all(entry["img_per_s"] > 0 for entry in result.history)
    assert newest_checkpoint(tmp_path)["history"] == result.history


def test_untrained_snapshot_holds_the_initial_weights(tmp_path: Path) -> None:
    pairs = block_pairs(8)
    result = train(tiny_config(snapshot_untrained=True), pairs, tmp_path)
    untrained = torch.load(result.snapshots[0], weights_only=True)
    assert (untrained["epoch"], untrained["train_stats"]) == (0, None)
    # A fresh run with the same seed starts from these weights.
    torch.manual_seed(tiny_config().seed)
    fresh = build_generator(tiny_config().model).state_dict()
    assert all(torch.equal(untrained["state_dict"][name], weight) for name, weight in fresh.items())
    trained = result.generator.state_dict()
    assert not all(torch.equal(trained[name], weight) for name, weight in fresh.items())


def test_snapshots_and_scoring_them_in_process_change_no_trained_weight(tmp_path: Path) -> None:
    def score_in_process(epoch: int, path: Path) -> None:
        # Test-time passes with dropout draw from the global RNG, as scoring a snapshot does.
        generator, _, meta = load_generator(path, "cpu")
        with torch.no_grad():
            inference_view(generator, meta["inference"])(torch.rand(2, 3, SIZE, SIZE) * 2 - 1)

    pairs = block_pairs(8)
    plain = train(tiny_config(epochs=2), pairs, tmp_path / "plain")
    scored = train(tiny_config(epochs=2, snapshot_untrained=True), pairs, tmp_path / "scored",
                   on_snapshot=score_in_process)
    for network in ("generator", "discriminator"):
        scored_state = getattr(scored, network).state_dict()
        for name, weight in getattr(plain, network).state_dict().items():
            assert torch.equal(weight, scored_state[name]), f"{network}.{name}"


def test_a_resumed_run_does_not_write_or_report_epoch_0_again(tmp_path: Path) -> None:
    pairs = block_pairs(8)
    train(tiny_config(epochs=1, snapshot_untrained=True), pairs, tmp_path)
    untrained = snapshot_file(tmp_path / SNAPSHOTS_DIR, 0)
    written = untrained.stat().st_mtime_ns
    epochs: list[int] = []
    result = train(tiny_config(epochs=2, snapshot_untrained=True), pairs, tmp_path,
                   on_snapshot=lambda epoch, path: epochs.append(epoch))
    assert epochs == [2] and list(result.snapshots) == [2]
    assert snapshot_epochs(tmp_path) == [0, 1, 2]
    assert untrained.stat().st_mtime_ns == written
    assert [entry["epoch"] for entry in result.history] == [1, 2]


def test_progress_reports_every_log_step(tmp_path: Path) -> None:
    infos = []
    pairs = block_pairs(8)
    train(tiny_config(epochs=2, log_every_steps=3), pairs, tmp_path, progress=infos.append)
    assert [(info.epoch, info.step_in_epoch, info.global_step) for info in infos] == [(2, 1, 3)]
    assert infos[0].img_per_s == pytest.approx(4 * infos[0].it_per_s)


# --- failures -------------------------------------------------------------------------------------------------


def test_diverging_loss_raises_training_error_and_writes_nothing(tmp_path: Path) -> None:
    # An absurd learning rate blows D up in its first update, so G's next loss is NaN.
    pairs = block_pairs(8)
    with pytest.raises(TrainingError, match="non-finite at epoch 1 step 1.*none"):
        train(tiny_config(lr=1e30, log_every_steps=1), pairs, tmp_path)
    assert list_checkpoints(tmp_path / CHECKPOINTS_DIR) == []
    assert snapshot_epochs(tmp_path) == []


def test_non_finite_weights_keep_the_last_good_checkpoint_and_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = RankTrainer.step
    steps_done: list[int] = []

    def poison_after_the_last_step_of_epoch_2(trainer: RankTrainer, real_a: torch.Tensor, real_b: torch.Tensor):
        losses = step(trainer, real_a, real_b)
        steps_done.append(1)
        if len(steps_done) == 4:  # 2 steps per epoch; this step's losses stay finite, the weights do not
            with torch.no_grad():
                next(trainer.g_raw.parameters()).fill_(float("nan"))
        return losses

    monkeypatch.setattr(RankTrainer, "step", poison_after_the_last_step_of_epoch_2)
    pairs = block_pairs(8)
    with pytest.raises(TrainingError, match=r"weights became non-finite in epoch 2.*epoch_0001_step_000000002\.pt"):
        train(tiny_config(epochs=3), pairs, tmp_path)
    checkpoints = list_checkpoints(tmp_path / CHECKPOINTS_DIR)
    assert [path.name for path in checkpoints] == ["epoch_0001_step_000000002.pt"]
    assert all_finite(load_checkpoint(checkpoints[0], "cpu")["generator"])
    assert snapshot_epochs(tmp_path) == [1]
    assert all_finite(torch.load(snapshot_file(tmp_path / SNAPSHOTS_DIR, 1), weights_only=True)["state_dict"])


@pytest.mark.parametrize(
    ("signal_step", "message", "position", "snapshots"),
    # 3 steps per epoch; the signal is seen at the next step boundary, and a checkpoint is written there.
    [(1, r"SIGTERM in epoch 2 step 2; the last checkpoint is \S*epoch_0002_step_000000005\.pt", (2, 2), [1]),
     (2, r"SIGTERM after epoch 2; .* resume from \S*epoch_0002_step_000000006\.pt", (2, 0), [1, 2])],
)
def test_sigterm_stops_at_a_step_boundary_keeping_finished_steps(
    tmp_path: Path, signal_step: int, message: str, position: tuple[int, int], snapshots: list[int]
) -> None:
    def terminate_in_epoch_2(info: ProgressInfo) -> None:
        if (info.epoch, info.step_in_epoch) == (2, signal_step):
            os.kill(os.getpid(), signal.SIGTERM)

    handler_before = signal.getsignal(signal.SIGTERM)
    pairs = block_pairs(12)
    with pytest.raises(TrainingInterrupted, match=message):
        train(tiny_config(epochs=3, log_every_steps=1), pairs, tmp_path, progress=terminate_in_epoch_2)
    checkpoint = newest_checkpoint(tmp_path)
    assert (checkpoint["epoch"], checkpoint["step_in_epoch"]) == position
    assert [entry["epoch"] for entry in checkpoint["history"]] == snapshots
    assert snapshot_epochs(tmp_path) == snapshots
    assert signal.getsignal(signal.SIGTERM) is handler_before


def test_changed_config_starts_fresh_and_says_why(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pairs = block_pairs(8)
    train(tiny_config(), pairs, tmp_path)
    with caplog.at_level(logging.WARNING, logger="pix2pix.training.loop"):
        result = train(tiny_config(lr=1e-3), pairs, tmp_path)
    assert result.resumed_from_epoch == 0
    assert "config differs in lr" in result.fresh_start_reason
    assert result.fresh_start_reason in caplog.text
