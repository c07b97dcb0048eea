"""Tests for the pix2pix networks (pix2pix.training.model) and losses (pix2pix.training.losses)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pix2pix.errors import ConfigError
from pix2pix.choices import GAN_LOSSES
from pix2pix.training.config import TrainConfig
from pix2pix.training.losses import discriminator_loss, generator_adversarial_loss, l1_loss
from pix2pix.training.model import (
    DROPOUT_PLACEMENTS,
    UPSAMPLE_MODES,
    ModelConfig,
    InferenceMode,
    build_discriminator,
    build_generator,
    count_parameters,
    inference_view,
    init_weights,
    patchgan_output_size,
)
from pix2pix.training.distributed import CpuSyncBatchNorm, convert_sync_batchnorm

# Counts of the authors' reference networks at 256² (pix2pix-facts.md).
REFERENCE_G_PARAMS = {"batch": 54_413_955, "instance": 54_409_603}
REFERENCE_D_PARAMS = {"batch": 2_768_705, "instance": 2_767_809}


def _random_images(cfg: ModelConfig, channels: int, batch: int = 1) -> torch.Tensor:
    """A batch ``(N, channels, H, W)`` of uniform values in [-1, 1] at ``cfg.image_size``."""
    return torch.rand(batch, channels, *cfg.image_size) * 2 - 1


def _dropout_block_indices(generator: nn.Module) -> list[int]:
    """Indices of the decoder blocks (0 = next to the bottleneck) that contain a Dropout layer."""
    return [
        index
        for index, block in enumerate(generator.up_blocks)
        if any(isinstance(layer, nn.Dropout) for layer in block.modules())
    ]


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_generator_parameter_count_matches_reference(norm: str) -> None:
    # The meta device builds the 54M-parameter network without allocating or initialising memory.
    with torch.device("meta"):
        generator = build_generator(ModelConfig(256, norm=norm))
    assert count_parameters(generator) == REFERENCE_G_PARAMS[norm]


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_discriminator_parameter_count_matches_reference(norm: str) -> None:
    discriminator = build_discriminator(ModelConfig(256, norm=norm))
    assert count_parameters(discriminator) == REFERENCE_D_PARAMS[norm]


@pytest.mark.parametrize(
    ("image_size", "logits_hw"), [(256, (30, 30)), (128, (14, 14)), ((256, 512), (30, 62))]
)
def test_discriminator_outputs_one_logit_per_patch(
    image_size: int | tuple[int, int], logits_hw: tuple[int, int]
) -> None:
    cfg = ModelConfig(image_size, ndf=8)  # the map size does not depend on the width
    discriminator = build_discriminator(cfg)
    with torch.no_grad():
        logits = discriminator(_random_images(cfg, 3, batch=2), _random_images(cfg, 3, batch=2))
    assert logits.shape == (2, 1, *logits_hw)
    assert patchgan_output_size(cfg.image_size, cfg.n_layers_d) == logits_hw


@pytest.mark.parametrize("upsample", UPSAMPLE_MODES)
@pytest.mark.parametrize("image_size", [64, (64, 128)])
def test_generator_output_has_input_size_and_tanh_range(image_size: int | tuple[int, int], upsample: str) -> None:
    cfg = ModelConfig(image_size, ngf=8, upsample=upsample)
    generator = build_generator(cfg)
    with torch.no_grad():
        output = generator(_random_images(cfg, 3, batch=2))
    assert output.shape == (2, 3, *cfg.image_size)
    assert output.abs().max() <= 1


def test_full_size_generator_translates_256_images() -> None:
    cfg = ModelConfig(256)
    generator = build_generator(cfg)
    generator.eval()
    with torch.no_grad():
        output = generator(_random_images(cfg, 3))
    assert output.shape == (1, 3, 256, 256)
    assert torch.isfinite(output).all()


def test_generator_maps_other_channel_counts() -> None:
    cfg = ModelConfig(32, in_channels=1, out_channels=2, ngf=8)
    with torch.no_grad():
        output = build_generator(cfg)(_random_images(cfg, 1))
    assert output.shape == (1, 2, 32, 32)


@pytest.mark.parametrize(("image_size", "depth"), [(64, 6), (256, 8), (512, 9), ((256, 512), 8)])
def test_unet_depth_follows_short_side(image_size: int | tuple[int, int], depth: int) -> None:
    with torch.device("meta"):
        generator = build_generator(ModelConfig(image_size))
    assert len(generator.down_blocks) == depth
    assert len(generator.up_blocks) == depth


@pytest.mark.parametrize(("placement", "blocks"), [("paper", [0, 1, 2]), ("pytorch", [1, 2, 3])])
def test_dropout_sits_in_three_decoder_blocks_by_placement(placement: str, blocks: list[int]) -> None:
    with torch.device("meta"):
        generator = build_generator(ModelConfig(256, dropout_placement=placement))
    assert _dropout_block_indices(generator) == blocks


def _interior_period2_spread(output: torch.Tensor) -> float:
    """Largest difference between the means of the four 2×2 phases of ``(N, C, H, W)``, borders cut off."""
    interior = output[..., 2:-2, 2:-2]
    phases = [interior[..., dy::2, dx::2].mean() for dy in (0, 1) for dx in (0, 1)]
    return (max(phases) - min(phases)).item()


@pytest.mark.parametrize(("upsample", "has_checkerboard"), [("transposed", True), ("resize", False)])
def test_decoder_upsampling_makes_a_checkerboard_only_when_transposed(upsample: str, has_checkerboard: bool) -> None:
    # A flat input to one decoder block: a transposed 4×4/2 conv sums a different 2×2 subset of its taps into each
    # output phase (period-2 pattern, Odena et al. 2016); nearest ×2 + 3×3 conv gives every pixel all nine taps.
    torch.manual_seed(0)
    generator = build_generator(ModelConfig(64, ngf=8, norm="instance", upsample=upsample))
    block = generator.up_blocks[-1]  # outermost: → out_channels, tanh
    with torch.no_grad():
        output = block(torch.full((1, block[-2].in_channels, 16, 16), 0.5))
    assert output.shape == (1, 3, 32, 32)
    spread = _interior_period2_spread(output)
    assert (spread > 1e-3) if has_checkerboard else (spread < 1e-6)


def test_resize_decoder_has_3x3_convs_and_fewer_parameters() -> None:
    with torch.device("meta"):
        paper = build_generator(ModelConfig(256))
        resized = build_generator(ModelConfig(256, upsample="resize"))
    assert not any(isinstance(layer, nn.ConvTranspose2d) for layer in resized.modules())
    decoder_convs = [layer for layer in resized.up_blocks.modules() if isinstance(layer, nn.Conv2d)]
    assert len(decoder_convs) == 8 and all(conv.kernel_size == (3, 3) for conv in decoder_convs)
    # Same encoder; each decoder conv keeps 9 of the 16 taps per channel pair.
    transposed_weights = sum(
        layer.weight.numel() for layer in paper.up_blocks.modules() if isinstance(layer, nn.ConvTranspose2d)
    )
    assert count_parameters(paper) - count_parameters(resized) == transposed_weights * 7 // 16


def test_zero_dropout_builds_no_dropout_layers() -> None:
    with torch.device("meta"):
        generator = build_generator(ModelConfig(256, dropout=0.0))
    assert _dropout_block_indices(generator) == []


def test_conv_init_has_std_002_and_zero_bias() -> None:
    torch.manual_seed(0)
    generator = build_generator(ModelConfig(64, norm="instance"))
    bottleneck_conv = generator.down_blocks[-1][1]  # 512 → 512, 4×4: 4.2M weights
    assert bottleneck_conv.weight.std().item() == pytest.approx(0.02, rel=0.01)
    assert bottleneck_conv.weight.mean().item() == pytest.approx(0.0, abs=1e-4)
    assert torch.count_nonzero(bottleneck_conv.bias) == 0


def test_batchnorm_init_has_gamma_near_one_and_zero_beta() -> None:
    torch.manual_seed(0)
    generator = build_generator(ModelConfig(64))
    gammas = torch.cat([m.weight for m in generator.modules() if isinstance(m, nn.BatchNorm2d)])
    betas = torch.cat([m.bias for m in generator.modules() if isinstance(m, nn.BatchNorm2d)])
    assert gammas.mean().item() == pytest.approx(1.0, abs=0.005)
    assert gammas.std().item() == pytest.approx(0.02, rel=0.1)
    assert torch.count_nonzero(betas) == 0


def test_init_weights_is_reproducible_from_the_torch_seed() -> None:
    cfg = ModelConfig(32, ngf=8)
    generators = []
    for _ in range(2):
        torch.manual_seed(7)
        generator = build_generator(cfg)
        init_weights(generator)
        generators.append(generator)
    for first, second in zip(generators[0].parameters(), generators[1].parameters(), strict=True):
        assert torch.equal(first, second)


@pytest.mark.parametrize("batchnorm", ["test_batch", "running"])
@pytest.mark.parametrize("enabled", [True, False])
def test_inference_dropout_makes_outputs_stochastic_only_when_enabled(enabled: bool, batchnorm: str) -> None:
    cfg = ModelConfig(64, ngf=8)
    generator = build_generator(cfg)
    view = inference_view(generator, InferenceMode(batchnorm=batchnorm, dropout=enabled))
    images = _random_images(cfg, 3)
    with torch.no_grad():
        first, second = view(images), view(images)
    assert torch.equal(first, second) is not enabled


def _trained_looking_generator(cfg: ModelConfig) -> nn.Module:
    """A generator whose running statistics differ from any batch's (as after training), in train mode."""
    torch.manual_seed(3)
    generator = build_generator(cfg)
    for layer in generator.modules():
        if isinstance(layer, nn.BatchNorm2d):
            layer.running_mean.uniform_(-0.5, 0.5)
            layer.running_var.uniform_(0.5, 2.0)
    return generator.train()


@pytest.mark.parametrize("test_batch", [1, 2])
def test_test_batch_mode_equals_train_mode_forward_passes_of_each_test_batch(test_batch: int) -> None:
    cfg = ModelConfig(32, ngf=8, dropout=0.0)
    generator = _trained_looking_generator(cfg)
    reference = _trained_looking_generator(cfg)  # the same weights, run the authors' way: train mode per test batch
    images = _random_images(cfg, 3, batch=5)
    with torch.no_grad():
        actual = inference_view(generator, InferenceMode("test_batch", False, test_batch))(images)
        expected = torch.cat([reference(images[i : i + test_batch]) for i in range(0, 5, test_batch)])
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-4)


def test_running_mode_equals_eval_mode() -> None:
    cfg = ModelConfig(32, ngf=8, dropout=0.0)
    generator = _trained_looking_generator(cfg)
    images = _random_images(cfg, 3, batch=3)
    with torch.no_grad():
        actual = inference_view(generator, InferenceMode("running", False))(images)
        expected = generator.eval()(images)
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("batchnorm", ["test_batch", "running"])
def test_inference_leaves_the_generator_its_mode_and_running_statistics(batchnorm: str) -> None:
    cfg = ModelConfig(32, ngf=8)
    generator = _trained_looking_generator(cfg)
    before = {key: value.clone() for key, value in generator.state_dict().items()}
    with torch.no_grad():
        inference_view(generator, InferenceMode(batchnorm, True, 2))(_random_images(cfg, 3, batch=4))
    assert generator.training and all(module.training for module in generator.modules())
    for key, value in generator.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_the_two_modes_give_different_images() -> None:
    cfg = ModelConfig(32, ngf=8, dropout=0.0)
    generator = _trained_looking_generator(cfg)
    images = _random_images(cfg, 3, batch=2)
    with torch.no_grad():
        outputs = [inference_view(generator, InferenceMode(mode, False))(images) for mode in ("test_batch", "running")]
    assert (outputs[0] - outputs[1]).abs().max() > 1e-2


def test_synchronised_batch_norm_is_evaluated_without_collectives() -> None:
    # No process group exists here: any all-reduce of CpuSyncBatchNorm in train mode would raise.
    cfg = ModelConfig(32, ngf=8, dropout=0.0)
    plain = _trained_looking_generator(cfg)
    synced = convert_sync_batchnorm(_trained_looking_generator(cfg), torch.device("cpu"))
    assert any(isinstance(layer, CpuSyncBatchNorm) for layer in synced.modules())
    images = _random_images(cfg, 3, batch=2)
    with torch.no_grad():
        actual = inference_view(synced, InferenceMode("test_batch", False))(images)
        expected = inference_view(plain, InferenceMode("test_batch", False))(images)
    torch.testing.assert_close(actual, expected)


def test_unknown_test_time_batchnorm_is_refused() -> None:
    with pytest.raises(ConfigError, match="running"):
        InferenceMode(batchnorm="eval")


def test_generator_gives_same_output_in_channels_last() -> None:
    cfg = ModelConfig(32, ngf=8)
    generator = build_generator(cfg).eval()
    images = _random_images(cfg, 3, batch=2)
    with torch.no_grad():
        expected = generator(images)
        actual = generator.to(memory_format=torch.channels_last)(images.to(memory_format=torch.channels_last))
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-4)


def test_config_rejects_unknown_norm() -> None:
    with pytest.raises(ConfigError, match="batch, instance"):
        ModelConfig(256, norm="group")


def test_config_rejects_size_the_unet_cannot_halve() -> None:
    with pytest.raises(ConfigError, match="300x300"):
        ModelConfig(300)


def test_config_rejects_unknown_dropout_placement() -> None:
    with pytest.raises(ConfigError, match=", ".join(DROPOUT_PLACEMENTS)):
        ModelConfig(256, dropout_placement="middle")


def test_config_rejects_unknown_upsample() -> None:
    with pytest.raises(ConfigError, match="upsample 'bilinear' is not one of transposed, resize"):
        ModelConfig(256, upsample="bilinear")


def test_config_rejects_dropout_of_one() -> None:
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        ModelConfig(256, dropout=1.0)


def test_config_rejects_discriminator_too_deep_for_the_image() -> None:
    with pytest.raises(ConfigError, match="n_layers_d=3"):
        ModelConfig(16)


def test_config_survives_dict_round_trip_through_a_checkpoint(tmp_path) -> None:
    cfg = ModelConfig((256, 512), norm="instance", ngf=32, dropout=0.2, dropout_placement="pytorch", upsample="resize")
    path = tmp_path / "config.pt"
    torch.save({"model_config": cfg.to_dict()}, path)
    restored = ModelConfig.from_dict(torch.load(path, weights_only=True)["model_config"])
    assert restored == cfg
    assert restored.image_size == (256, 512)


def test_config_from_a_checkpoint_without_upsample_is_the_paper_decoder() -> None:
    # Checkpoints written before the setting existed hold every other key; they were trained with transposed convs.
    data = ModelConfig(256).to_dict()
    del data["upsample"]
    assert ModelConfig.from_dict(data).upsample == "transposed"


def test_config_from_dict_rejects_unknown_keys() -> None:
    data = ModelConfig(256).to_dict() | {"ngf_typo": 64}
    with pytest.raises(ConfigError, match="ngf_typo"):
        ModelConfig.from_dict(data)


# Logits chosen so every hinge branch is hit: real 2 (past the margin), -1; fake 0.5, -3 (past the margin).
REAL_LOGITS = torch.tensor([2.0, -1.0])
FAKE_LOGITS = torch.tensor([0.5, -3.0])


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


EXPECTED_D_LOSS = {
    # BCE(x, 1) = softplus(-x), BCE(x, 0) = softplus(x)
    "vanilla": 0.5 * ((_softplus(-2) + _softplus(1)) / 2 + (_softplus(0.5) + _softplus(-3)) / 2),
    "lsgan": 0.5 * ((1 + 4) / 2 + (0.25 + 9) / 2),
    "hinge": 0.5 * ((0 + 2) / 2 + (1.5 + 0) / 2),
}
EXPECTED_G_LOSS = {
    "vanilla": (_softplus(-0.5) + _softplus(3)) / 2,
    "lsgan": (0.25 + 16) / 2,
    "hinge": (-0.5 + 3) / 2,
}


@pytest.mark.parametrize("kind", GAN_LOSSES)
def test_discriminator_loss_matches_hand_computed_value(kind: str) -> None:
    loss = discriminator_loss(kind, REAL_LOGITS, FAKE_LOGITS)
    assert loss.item() == pytest.approx(EXPECTED_D_LOSS[kind], rel=1e-6)


@pytest.mark.parametrize("kind", GAN_LOSSES)
def test_generator_adversarial_loss_matches_hand_computed_value(kind: str) -> None:
    loss = generator_adversarial_loss(kind, FAKE_LOGITS)
    assert loss.item() == pytest.approx(EXPECTED_G_LOSS[kind], rel=1e-6)


def test_vanilla_discriminator_loss_of_zero_logits_is_ln2() -> None:
    zeros = torch.zeros(2, 1, 30, 30)
    assert discriminator_loss("vanilla", zeros, zeros).item() == pytest.approx(0.5 * (math.log(2) + math.log(2)))


@pytest.mark.parametrize("kind", GAN_LOSSES)
def test_losses_of_bfloat16_logits_are_float32(kind: str) -> None:
    logits = REAL_LOGITS.to(torch.bfloat16)
    assert discriminator_loss(kind, logits, logits).dtype == torch.float32
    assert generator_adversarial_loss(kind, logits).dtype == torch.float32


def test_unknown_gan_loss_is_refused_by_the_config_that_owns_the_check() -> None:
    with pytest.raises(ConfigError, match="vanilla, lsgan, hinge"):
        TrainConfig(model=ModelConfig(image_size=(32, 32)), batch_size=1, epochs=1, gan_loss="wgan")


def test_l1_loss_is_mean_absolute_error() -> None:
    fake = torch.tensor([[0.5, -1.0], [0.0, 1.0]])
    target = torch.tensor([[0.0, 1.0], [0.0, -1.0]])
    assert l1_loss(fake, target).item() == pytest.approx((0.5 + 2 + 0 + 2) / 4)
