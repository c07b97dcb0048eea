"""The pix2pix networks: a U-Net generator and a PatchGAN discriminator (Isola et al., arXiv:1611.07004).

Both follow the authors' reference code closely enough to have the same parameter counts (G 54,413,955 /
D 2,768,705 at 256² with batch norm), but the U-Net is built as two flat lists of blocks with a skip stack
instead of recursive nesting, and accepts any size that :func:`pix2pix.data.sizes.check_image_size` allows
(non-square included). Images are ``(N, C, H, W)`` float tensors in ``[-1, 1]``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from pix2pix.choices import DROPOUT_PLACEMENTS, NORMS, TEST_BATCHNORM_MODES, UPSAMPLE_MODES
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
# The "resize" decoder's conv after nearest ×2 upsampling: 3×3, padding 1, keeps the size.
RESIZE_KERNEL = 3


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of both networks; stored in checkpoints so a generator can always be rebuilt as trained.

    ``image_size`` is ``(H, W)`` in pixels (an int or a list is accepted and normalised to a tuple);
    it fixes the U-Net depth (:func:`pix2pix.data.sizes.unet_depth`). ``ngf``/``ndf`` are the channel counts
    of the first generator/discriminator layer, ``n_layers_d`` the number of stride-2 convs of the PatchGAN
    (3 = 70×70 receptive field), ``dropout`` the probability used in three decoder blocks (0 disables them)
    and ``dropout_placement`` which three (see ``DROPOUT_PLACEMENTS``). ``upsample`` is how each decoder block
    doubles the size: ``"transposed"`` (the paper's 4×4 stride-2 transposed conv) or ``"resize"`` (nearest ×2,
    then a 3×3 conv: every output pixel gets the same number of kernel taps, so the decoder cannot make the
    period-2 checkerboard that transposed convs learn; see docs/benchmarks.md).
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
    upsample: str = "transposed"

    def __post_init__(self) -> None:
        # Frozen dataclass: normalising a field needs object.__setattr__.
        object.__setattr__(self, "image_size", parse_image_size(self.image_size))
        for name in ("in_channels", "out_channels", "ngf", "ndf", "n_layers_d"):
            _check_positive_int(name, getattr(self, name))
        _check_choice("norm", self.norm, NORMS)
        _check_choice("dropout_placement", self.dropout_placement, DROPOUT_PLACEMENTS)
        _check_choice("upsample", self.upsample, UPSAMPLE_MODES)
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
    """Decoder block mirroring encoder ``level``: ReLU → upsampling ×2 (:func:`_upsample_layers`) → norm [→ dropout].

    At level 0 (outermost) tanh replaces norm and dropout. The input is the bottleneck (innermost block) or the
    previous decoder output concatenated with a skip (twice the channels); the output has the channels of the
    encoder input at this level.
    """
    is_outermost, is_innermost = level == 0, level == len(channels) - 1
    in_ch = channels[level] if is_innermost else 2 * channels[level]
    out_ch = cfg.out_channels if is_outermost else channels[level - 1]
    bias = True if is_outermost else _conv_bias(cfg.norm)
    layers: list[nn.Module] = [nn.ReLU(), *_upsample_layers(cfg.upsample, in_ch, out_ch, bias)]
    if is_outermost:
        layers.append(nn.Tanh())
    else:
        layers.append(_norm_layer(cfg.norm, out_ch))
        if with_dropout:
            layers.append(nn.Dropout(cfg.dropout))
    return nn.Sequential(*layers)


def _upsample_layers(upsample: str, in_ch: int, out_ch: int, bias: bool) -> list[nn.Module]:
    """Layers that map ``(N, in_ch, h, w)`` to ``(N, out_ch, 2h, 2w)``, as ``upsample`` (see :class:`ModelConfig`) says."""
    if upsample == "transposed":
        return [nn.ConvTranspose2d(in_ch, out_ch, KERNEL, 2, PADDING, bias=bias)]
    return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(in_ch, out_ch, RESIZE_KERNEL, 1, RESIZE_KERNEL // 2, bias=bias)]


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


@dataclass(frozen=True)
class InferenceMode:
    """How the generator runs at test time (evaluation, sample grids, ``translate``); recorded with every score.

    ``batchnorm``: ``"test_batch"`` normalises with the statistics of each test batch of ``batch_size``
    consecutive images, as the paper (§3.3) and the authors' ``test.py`` (train mode unless ``--eval``) do;
    ``"running"`` uses the running averages kept from training (PyTorch's eval mode; ``batch_size`` then
    changes nothing). ``dropout`` keeps dropout sampling, as the paper does. The paper tests at batch 1,
    where batch statistics are each image's own (per-channel) statistics.
    """

    batchnorm: str = "test_batch"
    dropout: bool = True
    batch_size: int = 1

    def __post_init__(self) -> None:
        _check_choice("test-time batchnorm", self.batchnorm, TEST_BATCHNORM_MODES)
        if not isinstance(self.dropout, bool):
            raise ConfigError(f"test-time dropout must be true or false, got {self.dropout!r}")
        _check_positive_int("test-time batch_size", self.batch_size)

    def to_dict(self) -> dict[str, Any]:
        """``{"batchnorm", "dropout", "batch_size"}`` as builtins (checkpoints, JSON, MLflow)."""
        return asdict(self)

    def describe(self) -> str:
        """One line for logs and notes, e.g. ``batch norm: test_batch (batch 1), dropout on``."""
        batch = f" (batch {self.batch_size})" if self.batchnorm == "test_batch" else ""
        return f"batch norm: {self.batchnorm}{batch}, dropout {'on' if self.dropout else 'off'}"


class _TestTimeBatchNorm(nn.Module):
    """A plain, collective-free stand-in for any BatchNorm layer (``BatchNorm2d``, ``SyncBatchNorm``, ...) at test time.

    Shares the source layer's affine parameters and running buffers (never writes them). With ``group_size``
    None it normalises with the running statistics; otherwise every run of ``group_size`` consecutive samples
    of an ``(N, C, H, W)`` input is normalised with its own statistics (mean and biased variance over the
    group's samples and pixels, per channel), exactly as separate forward passes of that many images in train
    mode would, so one forward pass can serve many test batches. A last, shorter run forms its own group.
    """

    def __init__(self, source: _BatchNorm, group_size: int | None) -> None:
        super().__init__()
        # Not registered as a child: the view's train/eval calls must not reach the shared layer.
        object.__setattr__(self, "source", source)
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        source = self.source
        if self.group_size is None:
            return nn.functional.batch_norm(
                x, source.running_mean, source.running_var, source.weight, source.bias, False, 0.0, source.eps
            )
        full = x.shape[0] - x.shape[0] % self.group_size
        parts = [self._normalise_groups(x[:full], self.group_size)] if full else []
        if full < x.shape[0]:
            parts.append(self._normalise_groups(x[full:], x.shape[0] - full))
        return torch.cat(parts) if len(parts) > 1 else parts[0]

    def _normalise_groups(self, x: torch.Tensor, group: int) -> torch.Tensor:
        """Normalise ``x`` (``N`` a multiple of ``group``) with the statistics of each run of ``group`` samples."""
        n, channels, height, width = x.shape
        grouped = x.float().reshape(n // group, group, channels, height * width)
        var, mean = torch.var_mean(grouped, dim=(1, 3), unbiased=False, keepdim=True)
        scale = torch.rsqrt(var + self.source.eps)
        if self.source.affine:
            scale = scale * self.source.weight.view(1, 1, -1, 1)
        shift = -mean * scale + (self.source.bias.view(1, 1, -1, 1) if self.source.affine else 0.0)
        normalised = (grouped * scale + shift).reshape(n, channels, height, width)
        return normalised.to(x.dtype).contiguous(memory_format=_memory_format(x))


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    """channels_last when ``x`` is laid out so (keeps the generator's layout through the stand-in)."""
    return torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and x.shape[1] > 1 else torch.contiguous_format


def _inference_clone(module: nn.Module, mode: InferenceMode) -> nn.Module:
    """A structural copy of ``module`` that shares every parameter and buffer but none of the train/eval flags."""
    if isinstance(module, _BatchNorm):
        stand_in = _TestTimeBatchNorm(module, mode.batch_size if mode.batchnorm == "test_batch" else None)
        return stand_in.eval()
    clone = copy.copy(module)
    # copy.copy shares the child dict: give the clone its own, filled with clones.
    clone._modules = {name: _inference_clone(child, mode) for name, child in module._modules.items()}
    clone.training = isinstance(module, nn.Dropout) and mode.dropout
    return clone


def inference_view(generator: nn.Module, mode: InferenceMode) -> nn.Module:
    """A view of ``generator`` that runs as ``mode`` says, for ``torch.no_grad`` inference only.

    The view shares the weights (no copy, so it costs nothing at any size) but has its own modes: the
    ``generator`` stays as it is (train mode included), its running statistics are never updated, and
    every batch norm of the view is a plain one, so that a rank of a multi-process run can evaluate alone
    without a collective operation (synchronised batch norm would wait for the other ranks).
    """
    return _inference_clone(generator, mode)


def compute_batch_size(mode: InferenceMode, preferred: int) -> int:
    """Images per forward pass: the largest multiple of ``mode.batch_size`` not above ``preferred`` (at least one).

    A test batch never straddles two forward passes, so batch statistics are those of exactly
    ``mode.batch_size`` images (the last test batch may be shorter).
    """
    return max(1, preferred // mode.batch_size) * mode.batch_size


def count_parameters(module: nn.Module) -> int:
    """Number of scalars in all parameters of ``module`` (trainable or not; buffers excluded)."""
    return sum(parameter.numel() for parameter in module.parameters())
