"""Device choice shared by training, evaluation and translation."""

from __future__ import annotations

import os

import torch

from pix2pix.errors import ConfigError


# cuBLAS reads CUBLAS_WORKSPACE_CONFIG once, when a process first uses it: deterministic matmuls need it set
# before any CUDA work (loading a network counts). 8 workspaces of 4 MiB: the larger of NVIDIA's two settings.
CUBLAS_WORKSPACE_VARIABLE, DETERMINISTIC_CUBLAS_WORKSPACE = "CUBLAS_WORKSPACE_CONFIG", ":4096:8"


def request_deterministic_cublas() -> None:
    """Let cuBLAS run deterministically in this process (a user's own setting is kept).

    Call it before the first CUDA call of the process; afterwards it has no effect (see
    :func:`pix2pix.training.loop.train`, which refuses deterministic CUDA training then).
    """
    os.environ.setdefault(CUBLAS_WORKSPACE_VARIABLE, DETERMINISTIC_CUBLAS_WORKSPACE)


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
