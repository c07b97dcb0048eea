"""The one conversion between stored pixels and network values, and the one place that orients a pair.

Stored images are uint8 0..255; the networks see float32 in [-1, 1] (the generator's tanh range). A generated
image goes back to uint8 rounded to the nearest level, as a PNG writer would store it.
"""

from __future__ import annotations

from typing import TypeVar

import torch

Side = TypeVar("Side")


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 (any shape) → a new float32 tensor in [-1, 1]."""
    return images.to(torch.float32, copy=True).div_(127.5).sub_(1.0)


def to_pixels(images: torch.Tensor) -> torch.Tensor:
    """Values in [-1, 1] (any shape, any float dtype; clamped) → uint8 0..255, rounded."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def oriented(a: Side, b: Side, direction: str) -> tuple[Side, Side]:
    """``(input, target)`` of a stored pair's A and B sides: ``AtoB`` keeps them, ``BtoA`` swaps them."""
    return (a, b) if direction == "AtoB" else (b, a)
