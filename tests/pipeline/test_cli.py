"""The `pix2pix` command line on real files: translate, evaluate, prepare/split/export-pairs, and its error style."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pix2pix.cli import app
from pix2pix.data.prepare import PrepareConfig
from pix2pix.training.model import ModelConfig
from pix2pix.data.palette import CAR_PALETTE
from pix2pix.data.prepare import prepare_pairs
from pix2pix.data.store import open_pairs
from pix2pix.training.loop import TrainConfig, train
from tests import builders

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny generator trained for one epoch on 32 px car pairs, and those pairs."""
    root = tmp_path_factory.mktemp("trained")
    archive = builders.write_zip(root / "seed.zip", builders.seed_members(8, size=32))
    cfg = PrepareConfig(image_size=(32, 32), resize_policy="stretch", palette=CAR_PALETTE, min_valid_pairs=1)
    prepare_pairs(archive, root / "prepared", cfg, workers=1)
    pairs = open_pairs(root / "prepared" / "pairs.npy")
    model = ModelConfig(image_size=(32, 32), ngf=8, ndf=8)
    result = train(TrainConfig(model=model, batch_size=4, epochs=1), pairs, root / "models")
    return result.generator_path, root / "prepared" / "pairs.npy"


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    for command in ("prepare", "split", "export-pairs", "export-model", "import-generator", "sample", "translate", "evaluate", "ui"):
        assert command in result.output


def test_translate_writes_pngs_at_the_input_sizes_and_names_bad_files(trained, tmp_path: Path) -> None:
    model, _ = trained
    Image.fromarray(np.zeros((50, 70, 3), np.uint8)).save(tmp_path / "wide.jpg")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "-dash.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    inputs = [str(tmp_path / n) for n in ("wide.jpg", "-dash.png", "broken.png")]
    result = runner.invoke(app, ["translate", "-m", str(model), "-o", str(tmp_path / "out"), "--", *inputs])
    assert result.exit_code == 1 and "broken.png" in result.output
    assert Image.open(tmp_path / "out" / "wide.png").size == (70, 50)
    assert Image.open(tmp_path / "out" / "-dash.png").size == (32, 32)
    assert not (tmp_path / "out" / "broken.png").exists()


def test_translate_with_a_seed_is_repeatable(trained, tmp_path: Path) -> None:
    model, _ = trained
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(tmp_path / "in.png")
    for out in ("a", "b"):
        assert runner.invoke(app, ["translate", "-m", str(model), "-o", str(tmp_path / out), str(tmp_path / "in.png")]).exit_code == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a/in.png")), np.asarray(Image.open(tmp_path / "b/in.png")))


def test_translate_test_time_options_change_the_images(trained, tmp_path: Path) -> None:
    model, _ = trained
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    outputs = []
    for name, options in (("default", []), ("running", ["--batchnorm", "running"])):
        result = runner.invoke(app, ["translate", "-m", str(model), "-o", str(tmp_path / name), *options, str(tmp_path / "in.png")])
        assert result.exit_code == 0, result.output
        outputs.append(np.asarray(Image.open(tmp_path / name / "in.png")))
    assert "test_batch (batch 1)" in runner.invoke(app, ["translate", "-m", str(model), "-o", str(tmp_path / "again"), str(tmp_path / "in.png")]).output
    assert not np.array_equal(outputs[0], outputs[1])


def test_unknown_test_time_batchnorm_is_one_red_line(trained, tmp_path: Path) -> None:
    model, _ = trained
    result = runner.invoke(app, ["translate", "-m", str(model), "--batchnorm", "eval", str(tmp_path / "x.png")])
    assert result.exit_code == 1 and "test_batch, running" in result.output


def test_missing_model_is_one_red_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["translate", "-m", str(tmp_path / "none.pt"), str(tmp_path / "x.png")])
    assert result.exit_code == 1 and "none.pt: missing" in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_evaluate_scores_a_pairs_file_with_real_inception_features(trained, tmp_path: Path) -> None:
    model, pairs = trained
    result = runner.invoke(app, ["evaluate", str(pairs), "-m", str(model), "--num-images", "6", "-o", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["eval_images"] == 6 and metrics["fid"] > 0 and 0 < metrics["ssim"] < 1
    assert metrics["inception"] == "trunk" and metrics["is_mean"] is None


def test_prepare_split_export_pairs_on_a_users_folder(tmp_path: Path) -> None:
    folder = builders.ab_folder(tmp_path / "facades")
    assert runner.invoke(app, ["prepare", str(folder), "-o", str(tmp_path / "p"), "--image-size", "32x64", "--workers", "1"]).exit_code == 0
    assert runner.invoke(app, ["split", str(tmp_path / "p"), "-o", str(tmp_path / "s")]).exit_code == 0
    result = runner.invoke(app, ["export-pairs", str(tmp_path / "s" / "test.npy"), "-o", str(tmp_path / "png")])
    assert result.exit_code == 0
    assert [Image.open(p).size for p in sorted((tmp_path / "png").glob("*.png"))] == [(128, 32)] * 3


def test_prepare_rejects_a_bad_size_with_the_allowed_ones(tmp_path: Path) -> None:
    result = runner.invoke(app, ["prepare", str(tmp_path), "--image-size", "300"])
    assert result.exit_code == 1 and "power of two" in result.output
