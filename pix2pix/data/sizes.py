"""Image-size rules shared by the params check, prepare and the networks.

The U-Net halves the image ``depth = log2(min(H, W))`` times, down to a bottleneck one pixel high (or
wide), so the short side must be a power of two and the long side a multiple of it. 256 → 8
downsamplings, 64 → 6, 512 → 9; 512×256 (W×H) works, 300 or 384 does not.
"""

from __future__ import annotations

from collections.abc import Sequence

from pix2pix.errors import ConfigError

MIN_SIDE_PX = 16
MAX_SIDE_PX = 4096


def parse_image_size(value: int | Sequence[int]) -> tuple[int, int]:
    """Return ``(height, width)`` from an int (square) or ``[H, W]``; raise :class:`ConfigError` if unusable."""
    if isinstance(value, bool):
        raise ConfigError(f"image_size must be an int or [H, W], got {value!r}")
    if isinstance(value, int):
        size = (value, value)
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        size = (int(value[0]), int(value[1]))
    else:
        raise ConfigError(f"image_size must be an int or [H, W], got {value!r}")
    check_image_size(size)
    return size


def unet_depth(size: tuple[int, int]) -> int:
    """Number of stride-2 downsamplings the U-Net uses for ``(H, W)``."""
    return min(size).bit_length() - 1


def check_image_size(size: tuple[int, int]) -> None:
    """Raise :class:`ConfigError` unless the U-Net can take an image of ``(H, W)`` pixels."""
    height, width = size
    short, long = min(size), max(size)
    power_of_two = short & (short - 1) == 0
    if not (MIN_SIDE_PX <= short and long <= MAX_SIDE_PX and power_of_two and long % short == 0):
        raise ConfigError(
            f"image_size {height}x{width} (H x W) cannot go through the U-Net: the short side must be a power of "
            f"two from {MIN_SIDE_PX} to {MAX_SIDE_PX} (16, 32, 64, 128, 256, 512, 1024, ...) and the long side a "
            "multiple of it, e.g. 256, [256, 512] or [512, 1024]"
        )
