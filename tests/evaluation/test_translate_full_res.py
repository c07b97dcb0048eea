"""`translate --full-res`: the generator runs at each input's own size, mirror-padded to a size the U-Net takes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from pix2pix.cli import app
from pix2pix.errors import ConfigError
from pix2pix.evaluation.scoring import translate_batches
from pix2pix.evaluation.translate import InputReading, pad_to_multiple, translate_files
from pix2pix.training.checkpoint import save_atomic
from pix2pix.training.generator_file import generator_payload, load_generator
from pix2pix.training.model import InferenceMode, ModelConfig, build_generator
from tests import builders

# A 32 px model halves 5 times (pix2pix.data.sizes.unet_depth), so full-resolution sides are multiples of 32.
MODEL_SIZE = (32, 32)


class Recorder(nn.Module):
    """An identity generator that keeps the shapes it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(images.shape))
        return images


def test_padding_mirrors_the_image_up_to_the_next_multiple() -> None:
    image = builders.real_photo(0, (40, 50))
    padded = pad_to_multiple(image, 32)
    assert padded.shape == (64, 64, 3)
    assert np.array_equal(padded[:40, :50], image)
    assert np.array_equal(padded[40:64, :50], image[38:14:-1])  # reflect: the last row is the mirror's axis


def test_full_res_runs_each_image_at_its_own_size_and_crops_back(tmp_path: Path) -> None:
    photos = {"wide.png": builders.real_photo(0, (40, 100)), "small.png": builders.real_photo(1, (20, 24))}
    for name, photo in photos.items():
        (tmp_path / name).write_bytes(builders.png_bytes(photo))
    recorder = Recorder()
    failures = translate_files(
        recorder, MODEL_SIZE, [tmp_path / n for n in photos], tmp_path / "out", torch.device("cpu"),
        mode=InferenceMode(), reading=InputReading("photo"), full_res=True,
    )
    assert failures == [] and recorder.shapes == [(1, 3, 64, 128), (1, 3, 32, 32)]
    for name, photo in photos.items():
        assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / name)), photo)  # identity: no resize anywhere


def test_full_res_refuses_batch_statistics_over_several_images(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--test-batch 1 or --batchnorm running"):
        translate_files(
            Recorder(), MODEL_SIZE, [tmp_path / "x.png"], tmp_path / "out", torch.device("cpu"),
            mode=InferenceMode(batch_size=4), full_res=True,
        )


def test_full_res_command_output_is_the_generator_run_on_the_padded_input(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(image_size=MODEL_SIZE, ngf=4, ndf=4)
    save_atomic(generator_payload(build_generator(cfg), cfg, "AtoB", 1, InferenceMode(), None), tmp_path / "g.pt")
    photo = builders.real_photo(2, (50, 70))
    (tmp_path / "in.png").write_bytes(builders.png_bytes(photo))
    result = CliRunner().invoke(app, ["translate", "-m", str(tmp_path / "g.pt"), "-o", str(tmp_path / "out"), "--inputs", "photo", "--full-res", str(tmp_path / "in.png")])
    assert result.exit_code == 0, result.output
    generator, _, meta = load_generator(tmp_path / "g.pt", "cpu")
    expected = translate_batches(generator, pad_to_multiple(photo, 32)[None], torch.device("cpu"), meta["inference"], seed=0)[0]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "in.png")), expected[:50, :70])
