"""On-disk formats of training: the resumable checkpoint and the final generator used by ``translate``.

Both are ``torch.save`` files of plain containers and tensors only, so they load with
``torch.load(weights_only=True)`` (no unpickling of code), and both are written atomically.

A training checkpoint (written by rank 0 at every epoch's end and, optionally, inside epochs; the folder is
managed by :mod:`pix2pix.training.checkpoint_store`) holds::

    format_version (2), config (TrainConfig.to_dict()), config_hash, data_fingerprint, training_code,
    epoch (the epoch it is in or has finished, 1-based), step_in_epoch (steps of ``epoch`` done; 0 at its end),
    step (optimizer steps so far), epoch_sums (float32 (3,) loss sums of ``epoch`` so far, over all ranks),
    lrs (LR of each completed epoch), generator, discriminator, opt_g, opt_d, scaler (state dicts),
    history (one dict per finished epoch: losses, lr, rate)

``generator.pt`` holds ``format_version``, ``model_config`` (ModelConfig.to_dict()), ``state_dict`` (CPU,
contiguous), ``direction`` ("AtoB" | "BtoA"), ``inference`` (the test-time mode the pipeline used,
:meth:`InferenceMode.to_dict`: the default of ``translate``/``evaluate``) and ``epoch``. Files written before
``inference`` existed hold ``inference_dropout_default`` instead and were scored with running statistics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from pix2pix.atomic import atomic_path
from pix2pix.errors import ConfigError, DataError, TrainingError
from pix2pix.training.model import InferenceMode, ModelConfig, build_generator

FORMAT_VERSION = 1  # of generator.pt
CHECKPOINT_FORMAT_VERSION = 2  # 2: step_in_epoch, epoch_sums, training_code (mid-epoch resume)
GENERATOR_FILE = "generator.pt"
CHECKPOINT_KEYS = frozenset(
    {"format_version", "config", "config_hash", "data_fingerprint", "training_code", "epoch", "step_in_epoch",
     "step", "epoch_sums", "lrs", "generator", "discriminator", "opt_g", "opt_d", "scaler", "history"}
)
GENERATOR_KEYS = frozenset(
    {"format_version", "model_config", "state_dict", "direction", "epoch"}
)


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """``torch.save`` ``obj`` to ``path`` so that the file is either the previous one or complete."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _load(
    path: Path, device: torch.device | str, required: frozenset[str], what: str, version: int = FORMAT_VERSION
) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` a dict with at least the ``required`` keys; TrainingError otherwise."""
    try:
        data = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # torch raises many types for a truncated or foreign file
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
        raise TrainingError(f"{path}: not a readable {what} ({first_line}); delete it or retrain") from error
    if not isinstance(data, dict) or "format_version" not in data:
        keys = sorted(data)[:12] if isinstance(data, dict) else type(data).__name__
        raise TrainingError(f"{path}: not a pix2pix {what} (found {keys}); delete it or retrain")
    if data["format_version"] != version:
        raise TrainingError(f"{path}: {what} format {data['format_version']!r}, this version reads {version}")
    if not required <= set(data):
        raise TrainingError(f"{path}: not a pix2pix {what} (missing {sorted(required - set(data))})")
    return data


def load_checkpoint(path: Path, device: torch.device | str) -> dict[str, Any] | None:
    """Read a training checkpoint onto ``device``; ``None`` when there is none, TrainingError when unusable."""
    try:
        return _load(Path(path), device, CHECKPOINT_KEYS, "training checkpoint", CHECKPOINT_FORMAT_VERSION)
    except FileNotFoundError:
        return None


def generator_payload(
    generator: nn.Module, model_cfg: ModelConfig, direction: str, epoch: int, inference: InferenceMode
) -> dict[str, Any]:
    """The ``generator.pt`` content for ``generator`` (weights copied to CPU, contiguous)."""
    state = {key: value.detach().cpu().contiguous() for key, value in generator.state_dict().items()}
    return {
        "format_version": FORMAT_VERSION,
        "model_config": model_cfg.to_dict(),
        "state_dict": state,
        "direction": direction,
        "inference": inference.to_dict(),
        "epoch": epoch,
    }


def load_generator(path: Path, device: torch.device | str) -> tuple[nn.Module, ModelConfig, dict[str, Any]]:
    """Rebuild the generator saved in ``generator.pt`` on ``device``, ready for inference.

    Returns ``(module, model_config, meta)`` where ``meta`` holds ``direction``, ``inference`` (an
    :class:`InferenceMode`) and ``epoch``. The module is in eval mode: run it through
    :func:`pix2pix.training.model.inference_view` with the mode wanted. Raises DataError when the file is missing and
    TrainingError when it is unreadable or does not fit its own model config.
    """
    path = Path(path)
    try:
        data = _load(path, "cpu", GENERATOR_KEYS, "generator file")
    except FileNotFoundError as error:
        raise DataError(f"{path}: missing; train a model first (`dvc repro train`)") from error
    try:
        model_cfg = ModelConfig.from_dict(data["model_config"])
    except (ConfigError, TypeError) as error:
        raise TrainingError(f"{path}: invalid model_config ({error}); retrain") from error
    # Building initialises weights from the global RNG; keep the caller's random stream untouched.
    with torch.random.fork_rng(devices=[]):
        generator = build_generator(model_cfg)
    try:
        generator.load_state_dict(data["state_dict"])
    except RuntimeError as error:
        raise TrainingError(f"{path}: weights do not fit its model_config ({error}); retrain") from error
    generator.to(device).eval()
    meta = {"direction": data["direction"], "inference": _stored_inference(data, path), "epoch": data["epoch"]}
    return generator, model_cfg, meta


def _stored_inference(data: dict[str, Any], path: Path) -> InferenceMode:
    """The recorded test-time mode; older files (dropout flag only) were evaluated with running statistics."""
    try:
        if "inference" in data:
            return InferenceMode(**data["inference"])
        return InferenceMode(batchnorm="running", dropout=bool(data["inference_dropout_default"]), batch_size=1)
    except (ConfigError, TypeError, KeyError) as error:
        raise TrainingError(f"{path}: invalid test-time mode ({error}); retrain") from error
