"""Device choice shared by training, evaluation and translation."""

from __future__ import annotations

import torch


def pick_device(requested: str = "auto") -> torch.device:
    """``auto`` → the first CUDA GPU when present, else the CPU; otherwise ``requested`` as given (``cpu``, ``cuda:1``)."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)
