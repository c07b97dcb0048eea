"""Scoring a generator: FID, KID and IS from Inception features plus L1, PSNR and SSIM, on a fixed eval set.

The same function serves the per-epoch evaluation inside training, the ``evaluate`` stage and
``pix2pix evaluate``, so the numbers agree whichever path computed them. Generated images never touch
the disk: the generator's output is quantised to uint8 (what a saved PNG would hold) and fed straight
to the Inception preprocessing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pix2pix.atomic import atomic_path
from pix2pix.errors import DataError
from pix2pix.evaluation.image_metrics import fid_from_features, inception_score, kid_from_features, pixel_metrics
from pix2pix.evaluation.inception import InceptionExtractor
from pix2pix.training.model import set_inference_dropout

# What score_images measures for a set of generated images (summary.json and MLflow name them so).
METRIC_NAMES = ("fid", "kid", "is_mean", "is_std", "l1", "psnr", "ssim")


def eval_indices(count: int, num_images: int, seed: int) -> np.ndarray:
    """A fixed, seeded subset of ``min(count, num_images)`` test indices (all of them when ``num_images`` <= 0), sorted."""
    if count < 1:
        raise DataError("the test split is empty: lower data.test_fraction's floor or add data")
    if num_images <= 0 or num_images >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, size=num_images, replace=False))


def split_direction(pairs: np.ndarray, direction: str) -> tuple[np.ndarray, np.ndarray]:
    """``(inputs, targets)`` as ``(N, H, W, 3)`` uint8 from stored ``(N, 2, H, W, 3)`` pairs for ``AtoB``/``BtoA``."""
    a, b = pairs[:, 0], pairs[:, 1]
    return (a, b) if direction == "AtoB" else (b, a)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Generator output ``(N, 3, H, W)`` in [-1, 1] → ``(N, H, W, 3)`` uint8, rounded as a PNG writer would."""
    scaled = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return scaled.permute(0, 2, 3, 1).cpu().numpy()


def to_model_input(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """``(N, H, W, 3)`` uint8 → ``(N, 3, H, W)`` float in [-1, 1] on ``device``."""
    tensor = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return tensor.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


@torch.no_grad()
def translate_batches(
    generator: nn.Module,
    inputs: np.ndarray,
    device: torch.device,
    batch_size: int = 16,
    inference_dropout: bool = True,
    seed: int = 0,
) -> np.ndarray:
    """Run the generator over ``inputs`` ``(N, H, W, 3)`` uint8 → ``(N, H, W, 3)`` uint8, restoring its train/eval mode.

    ``inference_dropout`` keeps dropout active as the paper does at test time (BatchNorm uses its running
    statistics). The dropout noise is drawn from its own generator seeded with ``seed``, leaving the
    caller's RNG untouched, so the same weights always give the same images whichever code path asks.
    """
    was_training = generator.training
    set_inference_dropout(generator, inference_dropout)
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            outputs = [
                to_uint8(generator(to_model_input(inputs[i : i + batch_size], device)))
                for i in range(0, len(inputs), batch_size)
            ]
    finally:
        generator.train(was_training)
    return np.concatenate(outputs)


@dataclass
class Reference:
    """Inception features of the real target images of the eval set (cached by the ``reference`` stage)."""

    features: np.ndarray
    network_kind: str
    indices: np.ndarray


def compute_reference(extractor: InceptionExtractor, targets: np.ndarray, indices: np.ndarray) -> Reference:
    """Features of ``targets[indices]`` (real images of the output domain)."""
    features, _ = extractor.extract(targets[indices])
    return Reference(features=features, network_kind=extractor.kind, indices=indices)


def save_reference(reference: Reference, path: Path) -> None:
    """Write the reference features to an ``.npz`` atomically."""
    with atomic_path(Path(path)) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, features=reference.features, indices=reference.indices, network_kind=np.array(reference.network_kind))


def load_reference(path: Path) -> Reference:
    """Read features written by :func:`save_reference`."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            return Reference(stored["features"], str(stored["network_kind"]), stored["indices"])
    except (OSError, KeyError, ValueError) as error:
        raise DataError(f"{path}: unreadable reference features ({error}); run `dvc repro -f reference`") from error


def score_images(fakes: np.ndarray, targets: np.ndarray, extractor: InceptionExtractor, reference: Reference) -> dict[str, Any]:
    """All metrics of generated ``fakes`` against real ``targets`` (both ``(N, H, W, 3)`` uint8, aligned)."""
    if extractor.kind != reference.network_kind:
        raise DataError(
            f"reference features come from the {reference.network_kind} Inception network but the {extractor.kind} one "
            "is loaded; re-run the reference stage"
        )
    started = time.perf_counter()
    features, probs = extractor.extract(fakes)
    feature_seconds = time.perf_counter() - started
    is_mean, is_std = inception_score(probs) if probs is not None else (None, None)
    return {
        "fid": fid_from_features(features, reference.features),
        "kid": kid_from_features(features, reference.features),
        "is_mean": is_mean,
        "is_std": is_std,
        **pixel_metrics(fakes, targets),
        "eval_images": len(fakes),
        "feature_img_per_s": len(fakes) / feature_seconds if feature_seconds > 0 else None,
    }


def evaluate_generator(
    generator: nn.Module,
    inputs: np.ndarray,
    targets: np.ndarray,
    extractor: InceptionExtractor,
    reference: Reference,
    device: torch.device,
    inference_dropout: bool = True,
    seed: int = 0,
) -> tuple[dict[str, Any], np.ndarray]:
    """Translate ``inputs`` and score the results; returns ``(metrics, fakes)``."""
    started = time.perf_counter()
    fakes = translate_batches(generator, inputs, device, inference_dropout=inference_dropout, seed=seed)
    metrics = score_images(fakes, targets, extractor, reference)
    metrics["eval_seconds"] = time.perf_counter() - started
    return metrics, fakes
