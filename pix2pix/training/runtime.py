"""The process-wide settings of a training run: stop requests from signals, and deterministic kernels.

Both are context managers that restore what they changed when the run ends, so a library caller (a test, a
notebook) keeps its own signal handlers and backend flags.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

import torch

from pix2pix.devices import CUBLAS_WORKSPACE_VARIABLE, DETERMINISTIC_CUBLAS_WORKSPACE, request_deterministic_cublas
from pix2pix.errors import ConfigError
from pix2pix.training.config import TrainConfig


class StopRequest:
    """Turns the first SIGTERM/SIGINT into a flag read at step boundaries; a second one interrupts at once.

    Handlers are only installed from the main thread (Python's rule) and restored on exit.
    """

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal_name is not None:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name


def check_deterministic_cublas(cuda_initialized: bool) -> None:
    """Make cuBLAS deterministic, or raise ConfigError when it is too late: CUDA already ran without the setting.

    cuBLAS reads ``CUBLAS_WORKSPACE_CONFIG`` at its first use only; setting it afterwards does nothing and the
    first deterministic matmul fails deep inside the step. Callers that touch CUDA before :func:`train`
    (loading an Inception network, say) call :func:`pix2pix.devices.request_deterministic_cublas` first.
    """
    if CUBLAS_WORKSPACE_VARIABLE in os.environ:
        return
    if cuda_initialized:
        raise ConfigError(
            f"deterministic training on CUDA needs {CUBLAS_WORKSPACE_VARIABLE} set before the first CUDA call of the "
            "process, and CUDA already ran: call pix2pix.devices.request_deterministic_cublas() at start-up or "
            f"export {CUBLAS_WORKSPACE_VARIABLE}={DETERMINISTIC_CUBLAS_WORKSPACE}"
        )
    request_deterministic_cublas()


@contextlib.contextmanager
def backend_settings(cfg: TrainConfig, device: torch.device) -> Iterator[None]:
    """Set deterministic kernels and cudnn autotuning for the run; restore the previous settings after it."""
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
        torch.get_float32_matmul_precision(),
    )
    if device.type == "cuda" and cfg.deterministic:
        check_deterministic_cublas(torch.cuda.is_initialized())
    torch.use_deterministic_algorithms(cfg.deterministic)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not cfg.deterministic
        torch.backends.cudnn.deterministic = cfg.deterministic
        torch.set_float32_matmul_precision("highest" if cfg.deterministic else "high")
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = previous[1], previous[2]
        torch.set_float32_matmul_precision(previous[3])
