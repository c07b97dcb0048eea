"""params validation: the shipped params pass; each bad value fails with the key and the allowed values."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pix2pix.params import PAPER_WIDTHS, narrower_than_paper, validate_params
from pix2pix.errors import ConfigError
from pix2pix.data.sizes import parse_image_size, unet_depth
from stages.common import restrict

REPO = Path(__file__).resolve().parents[2]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def with_value(dotted: str, value) -> dict:
    params = copy.deepcopy(PARAMS)
    *parents, leaf = dotted.split(".")
    node = params
    for part in parents:
        node = node[part]
    node[leaf] = value
    return params


def test_shipped_params_are_valid() -> None:
    validate_params(PARAMS)


@pytest.mark.parametrize(("key", "value"), [
    ("data.palette", "auto"), ("data.palette", "palettes/camvid.csv"), ("data.palette", [[0, 0, 0], [9, 9, 9]]),
    ("data.void_ids", [255]), ("data.void_ids", 11), ("data.void_ids", []), ("data.classes", "data/classes.txt"),
])
def test_palette_void_ids_and_classes_accept_their_forms(key: str, value) -> None:
    validate_params(with_value(key, value))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("dataset", "imagenet", "sample, cars, dayton, folder"),
        ("direction", "AB", "AtoB, BtoA"),
        ("image_size", 300, "power of two"),
        ("image_size", [256, 384], "multiple"),
        ("image_size", "256", "int or \\[H, W\\]"),
        ("batch_size", 0, "batch_size"),
        ("lr", -1, "lr"),
        ("data.resize_policy", "squash", "stretch, pad, crop"),
        ("data.cars.source", "ftp://example.org/x.zip", "http\\(s\\)://"),
        ("data.palette", [[0, 0, 0], [0, 0, 0]], "duplicate"),
        ("data.palette", "rainbow", "give `auto`, a file ending in .yaml"),
        ("data.void_ids", [11, -1], "non-negative class ids"),
        ("data.classes", 3, "classes.txt / CSV"),
        ("data.split_mode", "official", "only applies to dataset dayton"),
        ("train.gpus", 0, "whole number ≥ 1, or all"),
        ("train.gpus", "every", "whole number ≥ 1, or all"),
        ("train.gpus", 3, "does not split evenly"),
        ("eval.batchnorm", "eval", "test_batch, running"),
        ("model.upsample", "bilinear", "transposed, resize"),
        ("eval.batch_size", 0, "batch_size"),
        ("eval.seed", -1, "seed"),
        ("data.split_seed", "1", "split_seed"),
        ("eval.segmenter.width", 0, "width"),
    ],
)
def test_bad_value_names_key_and_allowed_values(key: str, value, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        validate_params(with_value(key, value))
    assert key.split(".")[-1] in str(error.value)


@pytest.mark.parametrize(("size", "expected", "depth"), [(256, (256, 256), 8), ([256, 512], (256, 512), 8), (64, (64, 64), 6), (512, (512, 512), 9)])
def test_accepted_image_sizes(size, expected, depth) -> None:
    assert parse_image_size(size) == expected and unet_depth(expected) == depth


def test_restrict_keeps_only_declared_keys() -> None:
    assert restrict(PARAMS, ("seed", "data.sample.layout")) == {"seed": PARAMS["seed"], "data": {"sample": {"layout": "seed"}}}


def test_stage_with_bad_params_prints_one_line_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(with_value("batch_size", 0)))
    result = subprocess.run(
        [sys.executable, "-m", "stages.split"], cwd=tmp_path, capture_output=True, text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "batch_size" in result.stderr and "Traceback" not in result.stderr


def test_reading_an_undeclared_key_names_it_and_the_fix() -> None:
    declared = restrict(PARAMS, ("seed", "data.sample.layout"))
    with pytest.raises(ConfigError, match=r"`data.resize_policy` without declaring it.*dvc.yaml"):
        declared["data"]["resize_policy"]


def test_the_sample_run_keeps_its_half_widths_without_a_note() -> None:
    assert PARAMS["dataset"] == "sample" and PARAMS["model"]["ngf"] < PAPER_WIDTHS["model.ngf"]
    assert narrower_than_paper(PARAMS) is None


def test_real_data_with_the_sample_widths_gets_a_note_naming_the_fix() -> None:
    params = with_value("dataset", "cars")
    note = narrower_than_paper(params)
    assert note is not None
    assert "model.ngf=32, model.ndf=32" in note and "-S model.ngf=64 -S model.ndf=64" in note
    params["model"]["ngf"] = 64
    assert "-S model.ndf=64" in narrower_than_paper(params) and "ngf" not in narrower_than_paper(params)
    params["model"]["ndf"] = 96
    assert narrower_than_paper(params) is None
