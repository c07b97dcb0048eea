"""The pix2pix networks: a U-Net generator and a PatchGAN discriminator (Isola et al., arXiv:1611.07004).

Both follow the authors' reference code closely enough to have the same parameter counts (G 54,413,955 /
D 2,768,705 at 256² with batch norm), but the U-Net is built as two flat lists of blocks with a skip stack
instead of recursive nesting, and accepts any size that :func:`pix2pix.data.sizes.check_image_size` allows
(non-square included). Images are ``(N, C, H, W)`` float tensors in ``[-1, 1]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from pix2pix.choices import DROPOUT_PLACEMENTS, NORMS
from pix2pix.errors import ConfigError
from pix2pix.data.sizes import parse_image_size, unet_depth

# DROPOUT_PLACEMENTS: "paper" = dropout after decoder blocks 1–3 counted from the bottleneck (outputs at 2², 4², 8²
# for 256²), as in the paper, the Torch code and the TF tutorial; "pytorch" = one level further out (4², 8², 16²),
# as in the authors' PyTorch code.
DROPOUT_BLOCKS = 3
LEAKY_SLOPE = 0.2
INIT_STD = 0.02
MAX_CHANNEL_MULT = 8
# Every conv of both networks: 4×4 kernel, padding 1 (stride 2 halves an even side exactly).
KERNEL = 4
PADDING = 1


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of both networks; stored in checkpoints so a generator can always be rebuilt as trained.

    ``image_size`` is ``(H, W)`` in pixels (an int or a list is accepted and normalised to a tuple);
    it fixes the U-Net depth (:func:`pix2pix.data.sizes.unet_depth`). ``ngf``/``ndf`` are the channel counts
    of the first generator/discriminator layer, ``n_layers_d`` the number of stride-2 convs of the PatchGAN
    (3 = 70×70 receptive field), ``dropout`` the probability used in three decoder blocks (0 disables them)
    and ``dropout_placement`` which three (see ``DROPOUT_PLACEMENTS``).
    """

    image_size: tuple[int, int]
    in_channels: int = 3
    out_channels: int = 3
    ngf: int = 64
    ndf: int = 64
    norm: str = "batch"
    n_layers_d: int = 3
    dropout: float = 0.5
    dropout_placement: str = "paper"

    def __post_init__(self) -> None:
        # Frozen dataclass: normalising a field needs object.__setattr__.
        object.__setattr__(self, "image_size", parse_image_size(self.image_size))
        for name in ("in_channels", "out_channels", "ngf", "ndf", "n_layers_d"):
            _check_positive_int(name, getattr(self, name))
        _check_choice("norm", self.norm, NORMS)
        _check_choice("dropout_placement", self.dropout_placement, DROPOUT_PLACEMENTS)
        dropout = self.dropout
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ConfigError(f"model dropout must be a probability in [0, 1), got {dropout!r}; the paper uses 0.5")
        out_h, out_w = patchgan_output_size(self.image_size, self.n_layers_d)
        if min(out_h, out_w) < 1:
            raise ConfigError(
                f"a PatchGAN with n_layers_d={self.n_layers_d} leaves no output at image_size "
                f"{self.image_size[0]}x{self.image_size[1]}: lower n_layers_d or use a larger image_size"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain ``dict`` of builtins (``image_size`` as ``[H, W]``), safe for ``torch.save``/JSON/YAML."""
        data = asdict(self)
        data["image_size"] = list(self.image_size)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; raise :class:`ConfigError` on unknown keys or a missing ``image_size``."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown model config keys {unknown}; the known ones are {sorted(known)}")
        if "image_size" not in data:
            raise ConfigError("model config has no image_size: give it as an int or [H, W]")
        return cls(**data)


def _check_positive_int(name: str, value: object) -> None:
    """Raise :class:`ConfigError` unless ``value`` is an int ≥ 1 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"model {name} must be a positive integer, got {value!r}")


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ConfigError(f"model {name} {value!r} is not one of {', '.join(allowed)}")


def patchgan_output_size(image_size: tuple[int, int], n_layers: int) -> tuple[int, int]:
    """``(H, W)`` of the PatchGAN logit map for an ``(H, W)`` input: (30, 30) at 256², (30, 62) at 256×512."""
    strides = [2] * n_layers + [1, 1]
    return tuple(_conv_output_side(side, strides) for side in image_size)  # type: ignore[return-value]


def _conv_output_side(side: int, strides: list[int]) -> int:
    """Length of one side after a chain of 4×4, padding-1 convs with the given strides."""
    for stride in strides:
        side = (side + 2 * PADDING - KERNEL) // stride + 1
    return side


def _norm_layer(norm: str, channels: int) -> nn.Module:
    """Batch norm (affine, running stats) or instance norm (no affine, no running stats) as the reference code."""
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


def _conv_bias(norm: str) -> bool:
    """The reference code gives convs a bias exactly when the norm is instance norm (which has no shift).

    With batch norm this also drops the bias of the first and the innermost U-Net convs, which no norm
    follows; the parameter-count oracles depend on it.
    """
    return norm == "instance"


class UNetGenerator(nn.Module):
    """U-Net generator: maps ``(N, in_channels, H, W)`` in [-1, 1] to ``(N, out_channels, H, W)`` in [-1, 1].

    ``down_blocks[i]`` halves the size (encoder, ``depth`` blocks, the last one the bottleneck);
    ``up_blocks[j]`` doubles it (decoder, from the bottleneck out). Every encoder output except the
    bottleneck is concatenated onto the decoder output of the same size.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        depth = unet_depth(cfg.image_size)
        channels = [cfg.ngf * min(2**level, MAX_CHANNEL_MULT) for level in range(depth)]
        self.down_blocks = nn.ModuleList(_down_block(cfg, channels, level) for level in range(depth))
        first_dropout = DROPOUT_PLACEMENTS.index(cfg.dropout_placement)
        dropout_blocks = range(first_dropout, first_dropout + DROPOUT_BLOCKS) if cfg.dropout > 0 else range(0)
        self.up_blocks = nn.ModuleList(
            _up_block(cfg, channels, level, with_dropout=depth - 1 - level in dropout_blocks)
            for level in reversed(range(depth))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate a batch ``(N, C_in, H, W)`` → ``(N, C_out, H, W)``, same dtype and memory format."""
        skips = []
        for down in self.down_blocks:
            x = down(x)
            skips.append(x)
        x = skips.pop()  # the bottleneck feeds the decoder directly, not as a skip
        for up in self.up_blocks[:-1]:
            x = torch.cat([up(x), skips.pop()], dim=1)
        return self.up_blocks[-1](x)


def _down_block(cfg: ModelConfig, channels: list[int], level: int) -> nn.Sequential:
    """Encoder block ``level``: [LeakyReLU] → conv 4×4/2 → [norm].

    The first block has no activation; the first and the innermost (bottleneck) have no norm.

    The activation comes first (as in the reference) so the skip carries the pre-activation output;
    the decoder's ReLU then sees ReLU(x), the same values as the reference.
    """
    is_first, is_innermost = level == 0, level == len(channels) - 1
    in_ch = cfg.in_channels if is_first else channels[level - 1]
    layers: list[nn.Module] = [] if is_first else [nn.LeakyReLU(LEAKY_SLOPE)]
    layers.append(nn.Conv2d(in_ch, channels[level], KERNEL, 2, PADDING, bias=_conv_bias(cfg.norm)))
    if not (is_first or is_innermost):
        layers.append(_norm_layer(cfg.norm, channels[level]))
    return nn.Sequential(*layers)


def _up_block(cfg: ModelConfig, channels: list[int], level: int, with_dropout: bool) -> nn.Sequential:
    """Decoder block mirroring encoder ``level``: ReLU → transposed conv 4×4/2 → norm [→ dropout].

    At level 0 (outermost) tanh replaces norm and dropout. The input is the bottleneck (innermost block) or the
    previous decoder output concatenated with a skip (twice the channels); the output has the channels of the
    encoder input at this level.
    """
    is_outermost, is_innermost = level == 0, level == len(channels) - 1
    in_ch = channels[level] if is_innermost else 2 * channels[level]
    out_ch = cfg.out_channels if is_outermost else channels[level - 1]
    bias = True if is_outermost else _conv_bias(cfg.norm)
    layers: list[nn.Module] = [nn.ReLU(), nn.ConvTranspose2d(in_ch, out_ch, KERNEL, 2, PADDING, bias=bias)]
    if is_outermost:
        layers.append(nn.Tanh())
    else:
        layers.append(_norm_layer(cfg.norm, out_ch))
        if with_dropout:
            layers.append(nn.Dropout(cfg.dropout))
    return nn.Sequential(*layers)


class PatchDiscriminator(nn.Module):
    """PatchGAN: ``forward(a, b)`` scores each 70×70 patch of the pair with one logit, ``(N, 1, h, w)``.

    ``(h, w)`` is :func:`patchgan_output_size`; the 70 px receptive field holds for ``n_layers_d=3``.
    ``a`` is the conditioning image ``(N, in_channels, H, W)``, ``b`` the real or generated output
    ``(N, out_channels, H, W)``; the network sees their channel concatenation.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        bias = _conv_bias(cfg.norm)
        widths = [cfg.ndf * min(2**n, MAX_CHANNEL_MULT) for n in range(cfg.n_layers_d + 1)]
        layers: list[nn.Module] = [
            nn.Conv2d(cfg.in_channels + cfg.out_channels, widths[0], KERNEL, 2, PADDING),
            nn.LeakyReLU(LEAKY_SLOPE),
        ]
        for n in range(1, cfg.n_layers_d + 1):
            # The last of these keeps the size (stride 1) to widen the receptive field to 70 px.
            stride = 2 if n < cfg.n_layers_d else 1
            layers += [
                nn.Conv2d(widths[n - 1], widths[n], KERNEL, stride, PADDING, bias=bias),
                _norm_layer(cfg.norm, widths[n]),
                nn.LeakyReLU(LEAKY_SLOPE),
            ]
        layers.append(nn.Conv2d(widths[-1], 1, KERNEL, 1, PADDING))
        self.layers = nn.Sequential(*layers)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Patch logits ``(N, 1, h, w)`` (unbounded, float) for the pairs ``(a, b)``."""
        return self.layers(torch.cat([a, b], dim=1))


def build_generator(cfg: ModelConfig) -> UNetGenerator:
    """A U-Net generator for ``cfg``, initialised with :func:`init_weights` from the current torch RNG."""
    generator = UNetGenerator(cfg)
    init_weights(generator)
    return generator


def build_discriminator(cfg: ModelConfig) -> PatchDiscriminator:
    """A PatchGAN discriminator for ``cfg``, initialised with :func:`init_weights` from the current torch RNG."""
    discriminator = PatchDiscriminator(cfg)
    init_weights(discriminator)
    return discriminator


@torch.no_grad()
def init_weights(module: nn.Module) -> None:
    """Paper init, in place: (transposed) conv weights ~ N(0, 0.02), biases 0; batch norm γ ~ N(1, 0.02), β 0."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, INIT_STD)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, (nn.BatchNorm2d, nn.SyncBatchNorm)):
            nn.init.normal_(layer.weight, 1.0, INIT_STD)
            nn.init.zeros_(layer.bias)


def set_inference_dropout(generator: nn.Module, enabled: bool) -> None:
    """Put ``generator`` in eval mode; with ``enabled`` its Dropout layers keep sampling (the paper's test time)."""
    generator.eval()
    if enabled:
        for layer in generator.modules():
            if isinstance(layer, nn.Dropout):
                layer.train()


def count_parameters(module: nn.Module) -> int:
    """Number of scalars in all parameters of ``module`` (trainable or not; buffers excluded)."""
    return sum(parameter.numel() for parameter in module.parameters())
