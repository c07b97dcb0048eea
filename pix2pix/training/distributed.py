"""Multi-process training helpers: one code path for CPU, one GPU and many GPUs (``torchrun``).

A script calls :func:`init_from_env` once (it reads the ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` variables that
``torchrun`` sets; without them it describes a single process and starts nothing), passes ``info.device`` to
:func:`pix2pix.training.loop.train`, and calls :func:`cleanup` at the end. NCCL is used on GPUs, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from pix2pix.errors import ConfigError
from pix2pix.devices import pick_device

# Rank 0 runs the per-epoch callback (FID over a test set can take minutes) while the other ranks wait in
# the next collective; NCCL's default 10 minute timeout would kill them.
DEFAULT_TIMEOUT_S = 3600


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size`` processes, ``local_rank`` on its node, its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and calls back (rank 0)."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    """Integer value of environment variable ``name`` (``default`` when unset)."""
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError as error:
        raise ConfigError(f"environment variable {name}={value!r} is not an integer; launch with torchrun") from error


def init_from_env(timeout_s: float = DEFAULT_TIMEOUT_S) -> DistInfo:
    """Join the process group described by torchrun's environment variables (NCCL on GPU, gloo on CPU).

    With ``WORLD_SIZE`` unset or 1 nothing is initialised and the process trains alone on
    :func:`pix2pix.devices.pick_device`. Each GPU process uses ``cuda:LOCAL_RANK``.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if world_size <= 1:
        return DistInfo(0, 1, 0, pick_device())
    if not 0 <= rank < world_size:
        raise ConfigError(f"RANK={rank} is outside WORLD_SIZE={world_size}; launch with torchrun")
    if torch.cuda.is_available():
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} GPUs are visible: "
                "lower --nproc-per-node"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", timeout=timedelta(seconds=timeout_s), device_id=device)
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo", timeout=timedelta(seconds=timeout_s))
    return DistInfo(rank, world_size, local_rank, device)


def current(device: torch.device | None = None) -> DistInfo:
    """Describe the running process group (or a lone process) with ``device`` (default: :func:`pix2pix.devices.pick_device`)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistInfo(0, 1, 0, device or pick_device())
    rank, world_size = dist.get_rank(), dist.get_world_size()
    local_rank = _env_int("LOCAL_RANK", rank)
    if device is None:
        device = torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    return DistInfo(rank, world_size, local_rank, device)


def barrier() -> None:
    """Wait for every rank (nothing to do in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, world_size: int) -> torch.Tensor:
    """Sum ``tensor`` over all ranks in place (nothing to do in a single process); returns it."""
    if world_size > 1:
        dist.all_reduce(tensor)
    return tensor


def all_equal(values: list[int], world_size: int) -> bool:
    """Whether every rank holds the same integers ``values`` (True in a single process)."""
    if world_size <= 1:
        return True
    low = torch.tensor(values, dtype=torch.int64)
    high = low.clone()
    if dist.get_backend() == "nccl":
        low, high = low.cuda(), high.cuda()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    return bool(torch.equal(low, high))


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose gradient is the sum over ranks of the output gradients."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class CpuSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover the whole global batch, over gloo (CPU tensors).

    ``torch.nn.SyncBatchNorm`` only runs on accelerators; this is the same computation with autograd-aware
    all-reduces: the global mean first, then the global mean squared deviation (two passes, like
    single-process batch norm, so a 2-process run matches a 1-process run up to summation order).
    Running statistics use the unbiased global variance, as ``nn.BatchNorm2d`` does.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``(N, C, H, W)`` with global batch statistics in training mode, running ones in eval."""
        if not self.training:
            return super().forward(x)
        channel_shape = (1, -1, 1, 1)
        local_count = torch.tensor([x.numel() / x.shape[1]], dtype=torch.float32, device=x.device)
        sums = _AllReduceSum.apply(torch.cat([x.float().sum(dim=(0, 2, 3)), local_count]))
        count = sums[-1]
        mean = sums[:-1] / count
        squared = _AllReduceSum.apply(((x.float() - mean.view(channel_shape)) ** 2).sum(dim=(0, 2, 3)))
        var = squared / count
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach() * count / (count - 1))
        scale = torch.rsqrt(var + self.eps)
        if self.affine:
            scale = scale * self.weight
        shift = -mean * scale + (self.bias if self.affine else 0.0)
        return (x.float() * scale.view(channel_shape) + shift.view(channel_shape)).to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, unbiased_var: torch.Tensor) -> None:
        """Exponential (or, with ``momentum=None``, cumulative) average of the batch statistics."""
        self.num_batches_tracked += 1
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean.lerp_(mean, factor)
        self.running_var.lerp_(unbiased_var, factor)


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Replace every BatchNorm2d of ``module`` by a synchronised one: ``nn.SyncBatchNorm`` on GPU, else ours.

    Parameters and buffers are carried over; returns the (possibly new) root module.
    """
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if type(module) is nn.BatchNorm2d:
        replacement = CpuSyncBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        replacement.load_state_dict(module.state_dict())
        replacement.train(module.training)
        return replacement
    for name, child in module.named_children():
        setattr(module, name, convert_sync_batchnorm(child, device))
    return module
