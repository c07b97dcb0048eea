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
from pix2pix.evaluation.segmentation import MASK_METRIC_NAMES, MaskScorer
from pix2pix.training.model import InferenceMode, compute_batch_size, inference_view
from pix2pix.training.pixels import oriented, to_pixels, to_unit_range

# What score_images measures for a set of generated images (summary.json and MLflow name them so).
METRIC_NAMES = ("fid", "kid", "is_mean", "is_std", "l1", "psnr", "ssim")


def split_direction(pairs: np.ndarray, direction: str) -> tuple[np.ndarray, np.ndarray]:
    """``(inputs, targets)`` as ``(N, H, W, 3)`` uint8 from stored ``(N, 2, H, W, 3)`` pairs for ``AtoB``/``BtoA``."""
    return oriented(pairs[:, 0], pairs[:, 1], direction)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Generator output ``(N, 3, H, W)`` in [-1, 1] → ``(N, H, W, 3)`` uint8, rounded as a PNG writer would."""
    return to_pixels(images).permute(0, 2, 3, 1).cpu().numpy()


def to_model_input(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """``(N, H, W, 3)`` uint8 → ``(N, 3, H, W)`` float in [-1, 1] on ``device``."""
    tensor = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return to_unit_range(tensor.permute(0, 3, 1, 2))


@torch.no_grad()
def translate_batches(
    generator: nn.Module,
    inputs: np.ndarray,
    device: torch.device,
    mode: InferenceMode,
    seed: int,
    preferred_batch: int = 16,
) -> np.ndarray:
    """Run the generator over ``inputs`` ``(N, H, W, 3)`` uint8 → ``(N, H, W, 3)`` uint8 as ``mode`` says.

    The generator is used through :func:`inference_view`, so its own train/eval mode and running statistics
    stay as they are. Images go through in forward passes of :func:`compute_batch_size` images (test batches of
    ``mode.batch_size`` never straddle two). The dropout noise is drawn from the global RNG reseeded with
    ``seed`` inside a fork, leaving the caller's RNG untouched, so the same weights always give the same
    images whichever code path asks with the same ``preferred_batch``.
    """
    view = inference_view(generator, mode)
    step = compute_batch_size(mode, preferred_batch)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        outputs = [to_uint8(view(to_model_input(inputs[i : i + step], device))) for i in range(0, len(inputs), step)]
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


def score_images(
    fakes: np.ndarray,
    targets: np.ndarray,
    extractor: InceptionExtractor,
    reference: Reference,
    mask_scorer: MaskScorer | None = None,
) -> dict[str, Any]:
    """All metrics of generated ``fakes`` against real ``targets`` (both ``(N, H, W, 3)`` uint8, aligned).

    ``METRIC_NAMES``, ``MASK_METRIC_NAMES`` (None without ``mask_scorer``) and ``eval_images``; IS is None
    when the network has no classifier.
    """
    if extractor.kind != reference.network_kind:
        raise DataError(
            f"reference features come from the {reference.network_kind} Inception network but the {extractor.kind} one "
            "is loaded; re-run the reference stage"
        )
    features, probs = extractor.extract(fakes)
    is_mean, is_std = inception_score(probs) if probs is not None else (None, None)
    masks = mask_scorer.score(fakes) if mask_scorer is not None else dict.fromkeys(MASK_METRIC_NAMES)
    return {
        "fid": fid_from_features(features, reference.features),
        "kid": kid_from_features(features, reference.features),
        "is_mean": is_mean,
        "is_std": is_std,
        **pixel_metrics(fakes, targets),
        **masks,
        "eval_images": len(fakes),
    }


def evaluate_generator(
    generator: nn.Module,
    inputs: np.ndarray,
    targets: np.ndarray,
    extractor: InceptionExtractor,
    reference: Reference,
    device: torch.device,
    mode: InferenceMode,
    seed: int,
    mask_scorer: MaskScorer | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """Translate ``inputs`` as ``mode`` says (dropout noise from ``seed``) and score the results.

    Returns ``(metrics, fakes)``; ``metrics`` adds ``eval_seconds`` (wall time, a timing: it goes to
    ``timings.tsv``, never to the files that must stay the same from run to run) to :func:`score_images`'.
    """
    started = time.perf_counter()
    fakes = translate_batches(generator, inputs, device, mode, seed)
    metrics = score_images(fakes, targets, extractor, reference, mask_scorer)
    metrics["eval_seconds"] = time.perf_counter() - started
    return metrics, fakes
