"""Device choice shared by training, evaluation and translation."""

from __future__ import annotations

import torch

from pix2pix.errors import ConfigError


def pick_device(requested: str = "auto") -> torch.device:
    """``auto`` → the first CUDA GPU when present, else the CPU; otherwise ``requested`` (``cpu``, ``cuda``, ``cuda:1``)."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as error:
        raise ConfigError(f"device {requested!r} is not a device name; use auto, cpu, cuda or cuda:N") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {requested!r} asked for, but this machine has no usable CUDA GPU; use cpu or auto")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {requested!r} is not supported; use auto, cpu, cuda or cuda:N")
    return device
