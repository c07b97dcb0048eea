"""`pix2pix import-generator`: state_dicts of the authors' UnetGenerator run here exactly as there.

The reference network below is written from the published facts of junyanz/pytorch-CycleGAN-and-pix2pix,
models/networks.py (UnetGenerator and UnetSkipConnectionBlock; no code copied):
- UnetGenerator builds the innermost block (ngf*8 → ngf*8), then `num_downs - 5` middle blocks of ngf*8 with
  dropout, then ngf*4, ngf*2, ngf blocks and the outermost one; `self.model` is the outermost block. unet_256 is
  num_downs 8, unet_128 is 7.
- Each block keeps an nn.Sequential named `model`: outermost [downconv, submodule, ReLU, upconv(2*inner → outer,
  with bias), Tanh]; innermost [LeakyReLU(0.2, inplace), downconv, ReLU(inplace), upconv(inner → outer), upnorm];
  middle [LeakyReLU, downconv, downnorm, submodule, ReLU, upconv(2*inner → outer), upnorm] (+ Dropout(0.5)).
  So the keys nest as model.model.1.model.3.model....
- Convs are 4x4, stride 2, padding 1; `use_bias = norm_layer is InstanceNorm2d` (for the down convs, the inner up
  convs); instance norm is InstanceNorm2d(affine=False, track_running_stats=False): no keys.
- A non-outermost block returns torch.cat([x, self.model(x)], 1): the skip first.
- unet_256 at ngf 64 with batch norm has 54,413,955 parameters (shared/pix2pix-facts.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from pix2pix.cli import app
from pix2pix.errors import DataError
from pix2pix.training.generator_file import load_generator
from pix2pix.training.model import InferenceMode, count_parameters, inference_view
from pix2pix.training.pixels import to_pixels, to_unit_range
from pix2pix.training.reference_import import import_reference
from tests import builders


class ReferenceBlock(nn.Module):
    """Their UnetSkipConnectionBlock, as the facts above describe it."""

    def __init__(self, outer: int, inner: int, input_nc: int | None = None, submodule: nn.Module | None = None,
                 outermost: bool = False, innermost: bool = False, norm: str = "batch", use_dropout: bool = False) -> None:
        super().__init__()
        self.outermost = outermost
        bias = norm == "instance"
        make_norm = (lambda c: nn.BatchNorm2d(c)) if norm == "batch" else (lambda c: nn.InstanceNorm2d(c, affine=False))
        downconv = nn.Conv2d(input_nc or outer, inner, 4, 2, 1, bias=bias)
        if outermost:
            layers = [downconv, submodule, nn.ReLU(True), nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1), nn.Tanh()]
        elif innermost:
            layers = [nn.LeakyReLU(0.2, True), downconv, nn.ReLU(True), nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=bias), make_norm(outer)]
        else:
            layers = [nn.LeakyReLU(0.2, True), downconv, make_norm(inner), submodule, nn.ReLU(True),
                      nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1, bias=bias), make_norm(outer)]
            layers += [nn.Dropout(0.5)] if use_dropout else []
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class ReferenceUnet(nn.Module):
    """Their UnetGenerator(input_nc=3, output_nc=3, num_downs, ngf, norm_layer, use_dropout)."""

    def __init__(self, num_downs: int, ngf: int, norm: str = "batch", use_dropout: bool = True) -> None:
        super().__init__()
        block = ReferenceBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = ReferenceBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, use_dropout=use_dropout)
        for outer in (4, 2, 1):
            block = ReferenceBlock(ngf * outer, ngf * outer * 2, submodule=block, norm=norm)
        self.model = ReferenceBlock(3, ngf, input_nc=3, submodule=block, outermost=True, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def trained_looking(network: nn.Module) -> nn.Module:
    """Random batch-norm affine parameters and running statistics, so a swapped or dropped tensor shows."""
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
            elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and module.bias is not None:
                module.bias.uniform_(-0.1, 0.1)
    return network


def their_test_output(network: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Their test.py without --eval, with dropout off: train-mode batch norm, one image per batch."""
    network.train()
    for module in network.modules():
        if isinstance(module, nn.Dropout):
            module.eval()
    with torch.no_grad():
        return torch.cat([network(image[None]) for image in images])


def test_their_unet_256_keys_and_parameter_count_are_the_published_ones(tmp_path: Path) -> None:
    reference = ReferenceUnet(8, 64)
    state = reference.state_dict()
    assert "model.model.1.model.3.model.3.model.3.model.3.model.3.model.3.model.3.weight" in state  # innermost up conv
    assert count_parameters(reference) == 54_413_955
    torch.save(state, tmp_path / "latest_net_G.pth")
    generator, cfg, unet = import_reference(tmp_path / "latest_net_G.pth", None, True, "pytorch")
    assert (unet.depth, unet.ngf, unet.norm, cfg.image_size) == (8, 64, "batch", (256, 256))
    assert count_parameters(generator) == 54_413_955


@pytest.mark.parametrize(
    ("num_downs", "ngf", "norm", "variant"),
    [(8, 8, "batch", "plain"), (8, 4, "batch", "old_pytorch_and_data_parallel"), (7, 6, "instance", "plain")],
    ids=["unet_256_batch", "unet_256_without_num_batches_tracked_module_prefix", "unet_128_instance"],
)
def test_imported_generator_computes_what_their_network_computes(tmp_path: Path, num_downs: int, ngf: int, norm: str, variant: str) -> None:
    torch.manual_seed(num_downs + ngf)
    reference = trained_looking(ReferenceUnet(num_downs, ngf, norm))
    state = reference.state_dict()
    if variant != "plain":  # PyTorch < 0.4.1 saved no num_batches_tracked; DataParallel adds `module.`
        state = {f"module.{k}": v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "latest_net_G.pth")
    result = CliRunner().invoke(app, ["import-generator", str(tmp_path / "latest_net_G.pth"), "-o", str(tmp_path / "g.pt")])
    assert result.exit_code == 0, result.output
    size = 2**num_downs
    photos = [builders.real_photo(i, (size, size)) for i in range(2)]
    images = to_unit_range(torch.from_numpy(np.stack(photos)).permute(0, 3, 1, 2))
    theirs = their_test_output(reference, images)
    generator, _, _ = load_generator(tmp_path / "g.pt", "cpu")
    with torch.no_grad():
        ours = inference_view(generator, InferenceMode("test_batch", dropout=False, batch_size=1))(images)
    assert (ours - theirs).abs().max().item() <= 1e-5
    # The command the issue names gives those images (as PNGs: rounded to uint8).
    for i, photo in enumerate(photos):
        (tmp_path / f"x{i}.png").write_bytes(builders.png_bytes(photo))
    options = ["--no-dropout", "--batchnorm", "test_batch", "--test-batch", "1", "--inputs", "photo"]
    result = CliRunner().invoke(app, ["translate", "-m", str(tmp_path / "g.pt"), "-o", str(tmp_path / "out"), *options, str(tmp_path / "x0.png"), str(tmp_path / "x1.png")])
    assert result.exit_code == 0, result.output
    expected = to_pixels(theirs).permute(0, 2, 3, 1).numpy()
    for i in range(2):
        written = np.asarray(Image.open(tmp_path / "out" / f"x{i}.png")).astype(int)
        assert np.abs(written - expected[i]).max() <= 1  # a value within 1e-5 of a rounding edge may round either way


def test_a_resnet_generator_is_refused_in_one_line(tmp_path: Path) -> None:
    # Their ResnetGenerator: nn.Sequential `model` = [ReflectionPad2d, Conv2d 7x7, norm, ReLU, 2 downsamplings (3
    # modules each), ResnetBlocks from index 10 whose `conv_block` holds [ReflectionPad2d, Conv2d 3x3, norm, ...].
    torch.save({"model.1.weight": torch.zeros(64, 3, 7, 7), "model.10.conv_block.1.weight": torch.zeros(256, 256, 3, 3)}, tmp_path / "resnet.pth")
    result = CliRunner().invoke(app, ["import-generator", str(tmp_path / "resnet.pth"), "-o", str(tmp_path / "g.pt")])
    assert result.exit_code == 1 and not (tmp_path / "g.pt").exists()
    assert "resnet.pth: a ResNet generator (keys such as model.10.conv_block.1.weight)" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(("content", "found"), [
    ({"epoch": 3, "state_dict": {}}, "not a state_dict of tensors (found a dict with keys epoch, state_dict)"),
    ({"model.0.weight": torch.zeros(64, 6, 4, 4)}, "not a UnetGenerator state_dict (keys model.0.weight"),
    (b"not a torch file", "not a PyTorch weights file"),
], ids=["checkpoint_dict", "discriminator", "text"])
def test_a_file_that_is_no_unet_state_dict_is_refused_saying_what_was_found(tmp_path: Path, content: object, found: str) -> None:
    path = tmp_path / "weights.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(DataError, match=f"weights.pth: {found}".replace("(", r"\(").replace(")", r"\)")):
        import_reference(path, None, True, "pytorch")


def test_label_map_inputs_record_the_palette_and_classes_given(tmp_path: Path) -> None:
    torch.save(ReferenceUnet(5, 2).state_dict(), tmp_path / "latest_net_G.pth")  # a 32 px U-Net: no middle blocks
    (tmp_path / "palette.csv").write_text("id,name,r,g,b\n0,wall,0,0,255\n1,window,255,0,0\n2,door,0,255,0\n")
    command = ["import-generator", str(tmp_path / "latest_net_G.pth"), "-o", str(tmp_path / "g.pt"), "--inputs", "label_map"]
    refused = CliRunner().invoke(app, command)
    assert refused.exit_code == 1 and "--inputs label_map needs --palette FILE" in refused.output
    result = CliRunner().invoke(app, [*command, "--palette", str(tmp_path / "palette.csv"), "--direction", "BtoA", "--dataset", "facades"])
    assert result.exit_code == 0, result.output
    _, cfg, meta = load_generator(tmp_path / "g.pt", "cpu")
    assert cfg.image_size == (32, 32) and meta["direction"] == "BtoA"
    assert meta["inference"] == InferenceMode("test_batch", dropout=True, batch_size=1)  # their test.py without --eval
    description = meta["description"]
    assert (description["input_kind"], description["palette"], description["class_names"]) == (
        "label_map", [[0, 0, 255], [255, 0, 0], [0, 255, 0]], ["wall", "window", "door"]
    )
    assert description["provenance"] == {"dataset": "facades", "data_fingerprint": None, "commit": None}


def test_a_training_size_of_another_depth_is_refused_naming_the_right_one(tmp_path: Path) -> None:
    torch.save(ReferenceUnet(8, 2).state_dict(), tmp_path / "latest_net_G.pth")
    with pytest.raises(DataError, match=r"latest_net_G\.pth: the weights do not fit a U-Net of depth 8, ngf 2, batch norm at 128x128 .*give --image-size 256"):
        import_reference(tmp_path / "latest_net_G.pth", 128, True, "pytorch")
