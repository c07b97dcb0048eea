"""Device choice shared by training, evaluation and translation."""

from __future__ import annotations

import os
from pathlib import Path

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


# CPU flags (Linux /proc/cpuinfo) of units that compute bf16 natively: AMX tiles (Intel Sapphire Rapids and later)
# and AVX512-BF16 (AMD Zen 4, Intel Cooper Lake and later). With either, bf16 autocast + channels_last trains the
# networks 1.3-2.1x faster than fp32 (docs/benchmarks.md); without them bf16 is emulated and slower.
AMX_BF16_FLAGS = frozenset({"amx_bf16", "amx_tile"})
AVX512_BF16_FLAG = "avx512_bf16"
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The feature flags of this machine's CPU (empty where /proc/cpuinfo does not exist)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_bf16_units(flags: frozenset[str]) -> str | None:
    """``"amx"``, ``"avx512_bf16"`` or None: the native bf16 units ``flags`` show, the fastest first."""
    if AMX_BF16_FLAGS <= flags:
        return "amx"
    return AVX512_BF16_FLAG if AVX512_BF16_FLAG in flags else None


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
