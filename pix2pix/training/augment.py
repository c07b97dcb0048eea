"""Training-time jitter of image pairs, on whatever device the batch lives on (no PIL, no per-sample loop).

pix2pix's jitter (arXiv:1611.07004, §6.2): resize both images to 286/256 of the training size, cut one random
crop of the training size and flip horizontally with probability ½ — the same crop and flip for A and B, so
the pair stays aligned. Colour masks are resized with nearest neighbour (interpolated colours are not
classes), photos bicubically. The random parameters are drawn up front (:func:`draw_jitter`) so that the
caller controls the random stream and every process of a multi-GPU run agrees on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pix2pix.training.pixels import to_unit_range

# The paper trains 256² crops of 286² resizes.
LOAD_SCALE = 286 / 256


@dataclass(frozen=True)
class JitterParams:
    """Per-sample jitter: crop corners ``top``/``left`` (int64, ``(N,)``) and ``flip`` (bool, ``(N,)``)."""

    top: torch.Tensor
    left: torch.Tensor
    flip: torch.Tensor

    def select(self, index: slice | torch.Tensor) -> JitterParams:
        """The parameters of the samples at ``index``."""
        return JitterParams(self.top[index], self.left[index], self.flip[index])

    def to(self, device: torch.device) -> JitterParams:
        """The same parameters on ``device``."""
        return JitterParams(*(t.to(device, non_blocking=True) for t in (self.top, self.left, self.flip)))


def load_size(image_size: tuple[int, int], jitter: bool) -> tuple[int, int]:
    """``(H, W)`` the images are resized to before cropping: 286/256 of ``image_size`` (256 → 286, 32 → 36)."""
    if not jitter:
        return image_size
    return (round(image_size[0] * LOAD_SCALE), round(image_size[1] * LOAD_SCALE))


def draw_jitter(
    count: int, image_size: tuple[int, int], generator: torch.Generator, *, jitter: bool, flip: bool
) -> JitterParams:
    """Draw crop corners (uniform over the valid range) and flips (p = ½) for ``count`` samples, on CPU.

    Without ``jitter`` the corners are 0; without ``flip`` no sample is flipped. The draws happen in a fixed
    order whatever the options, so toggling one option does not change the other's values.
    """
    load_h, load_w = load_size(image_size, jitter)
    top = torch.randint(0, load_h - image_size[0] + 1, (count,), generator=generator)
    left = torch.randint(0, load_w - image_size[1] + 1, (count,), generator=generator)
    flips = torch.rand(count, generator=generator) < 0.5
    return JitterParams(top, left, flips & flip)


def pairs_to_float(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a uint8 ``(N, 2, H, W, 3)`` pairs batch into float32 A and B, each ``(N, 3, H, W)`` in [-1, 1]."""
    images = to_unit_range(batch.permute(0, 1, 4, 2, 3))
    return images[:, 0], images[:, 1]


def _resize(images: torch.Tensor, size: tuple[int, int], nearest: bool) -> torch.Tensor:
    """Resize ``(N, C, H, W)`` in [-1, 1] to ``size``: nearest (PIL's rounding) or bicubic clamped back to range."""
    if images.shape[-2:] == size:
        return images
    if nearest:
        return F.interpolate(images, size=size, mode="nearest-exact")
    # Bicubic overshoots at edges; clamp so the values stay valid pixels.
    return F.interpolate(images, size=size, mode="bicubic", align_corners=False).clamp_(-1.0, 1.0)


def crop_and_flip(images: torch.Tensor, params: JitterParams, size: tuple[int, int]) -> torch.Tensor:
    """Cut a ``size`` window at each sample's ``(top, left)`` and mirror it where ``flip``; two gathers, no loop.

    ``images`` is ``(N, C, H, W)``, ``params`` on the same device; returns ``(N, C, size[0], size[1])``.
    """
    batch, channels, _, width = images.shape
    rows = params.top[:, None] + torch.arange(size[0], device=images.device)
    steps = torch.arange(size[1], device=images.device)
    # A flipped window reads its columns right to left.
    cols = params.left[:, None] + torch.where(params.flip[:, None], size[1] - 1 - steps, steps)
    images = images.gather(2, rows[:, None, :, None].expand(batch, channels, size[0], width))
    return images.gather(3, cols[:, None, None, :].expand(batch, channels, size[0], size[1]))


def jitter_pairs(
    a: torch.Tensor, b: torch.Tensor, params: JitterParams, *, jitter: bool, mask_input: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply one resize-crop-flip per sample to A and B alike; ``(N, 3, H, W)`` in [-1, 1] in and out.

    ``mask_input`` resizes A (the stored conditioning side, whatever the training direction) with nearest
    neighbour; B is always resized bicubically. Without ``jitter`` only the flips apply.
    """
    size = (a.shape[-2], a.shape[-1])
    target = load_size(size, jitter)
    a = _resize(a, target, nearest=mask_input)
    b = _resize(b, target, nearest=False)
    both = crop_and_flip(torch.cat([a, b], dim=1), params, size)
    return both[:, : a.shape[1]], both[:, a.shape[1] :]
