"""A run's snapshots are scored once per snapshot and settings: cached scores come back unchanged, other settings
or another snapshot score again, and each scored epoch gets its input | output | target grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix.errors import DataError
from pix2pix.evaluation.run_scores import check_one_run, grid_image, score_snapshot
from pix2pix.evaluation.scoring import compute_reference
from pix2pix.evaluation.setup import EvalSetup
from pix2pix.evaluation.standin import standin_inception
from pix2pix.training.config import TrainConfig
from pix2pix.training.loop import train
from pix2pix.training.model import InferenceMode, ModelConfig
from pix2pix.training.snapshots import SNAPSHOTS_DIR, list_snapshots

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, EvalSetup]:
    """Snapshots of epochs 0 and 1 of a tiny run, and a scoring set-up on 10 test pairs (stand-in Inception)."""
    folder = tmp_path_factory.mktemp("run")
    pairs = np.random.default_rng(0).integers(0, 256, (18, 2, 32, 32, 3), dtype=np.uint8)
    cfg = TrainConfig(model=ModelConfig(32, ngf=8, ndf=8), batch_size=4, epochs=1, snapshot_untrained=True)
    train(cfg, pairs[:8], folder)
    extractor = standin_inception(CPU)
    inputs, targets = pairs[8:, 0], pairs[8:, 1]
    reference = compute_reference(extractor, targets, np.arange(len(targets)))
    return folder, EvalSetup(reference, extractor, inputs, targets, InferenceMode(), 0, None, {})


def test_scores_are_computed_once_per_snapshot_and_settings(run: tuple[Path, EvalSetup], tmp_path: Path) -> None:
    folder, setup = run
    (_, untrained), (_, trained) = list_snapshots(folder / SNAPSHOTS_DIR)
    first = score_snapshot(trained, setup, CPU, tmp_path, "key-a", sample_count=2)
    again = score_snapshot(trained, setup, CPU, tmp_path, "key-a", sample_count=2)
    assert (first.cached, again.cached) == (False, True)
    assert again.metrics == first.metrics and again.epoch == 1
    assert again.train_stats is not None and set(again.train_stats) == {"epoch", "loss_g", "loss_d", "loss_l1", "lr"}
    other_settings = score_snapshot(trained, setup, CPU, tmp_path, "key-b", sample_count=2)
    other_snapshot = score_snapshot(untrained, setup, CPU, tmp_path, "key-a", sample_count=2)
    assert not other_settings.cached and not other_snapshot.cached
    assert other_snapshot.train_stats is None and other_snapshot.metrics["fid"] != first.metrics["fid"]
    assert len(list(tmp_path.glob("*.json"))) == 3


def test_the_sample_grid_shows_input_output_target_rows(run: tuple[Path, EvalSetup], tmp_path: Path) -> None:
    folder, setup = run
    score = score_snapshot(list_snapshots(folder / SNAPSHOTS_DIR)[1][1], setup, CPU, tmp_path, "key", sample_count=3)
    grid = np.asarray(Image.open(score.grid))
    assert grid.shape == (3 * 32, 3 * 32, 3)
    assert np.array_equal(grid[32:64, :32], setup.inputs[1]) and np.array_equal(grid[32:64, 64:], setup.targets[1])


def test_grid_image_tiles_rows() -> None:
    a, b, c = (np.full((2, 4, 4, 3), value, np.uint8) for value in (10, 20, 30))
    grid = grid_image(a, b, c)
    assert grid.shape == (8, 12, 3) and (grid[:, 4:8] == 20).all() and (grid[:, 8:] == 30).all()


def test_snapshots_of_two_runs_are_refused(run: tuple[Path, EvalSetup], tmp_path: Path) -> None:
    folder, _ = run
    pairs = np.random.default_rng(1).integers(0, 256, (8, 2, 32, 32, 3), dtype=np.uint8)
    other = train(TrainConfig(model=ModelConfig(32, ngf=8, ndf=8), batch_size=4, epochs=1), pairs, tmp_path)
    mixed = [*list_snapshots(folder / SNAPSHOTS_DIR), (1, other.generator_path)]
    with pytest.raises(DataError, match="snapshots of 2 different training runs"):
        check_one_run(mixed)
