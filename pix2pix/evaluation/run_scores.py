"""The scores of a training run's generator snapshots, each computed once per snapshot and scoring settings.

Scoring is separate from training (:mod:`pix2pix.training.snapshots`): a snapshot's scores are cached in a
folder under a key made of the snapshot file's sha256 and :func:`settings_key` — the ``eval`` settings, the
direction, the scoring inputs' bytes (reference features, Inception choice, segmenter) and the scoring code's
bytes. Changing any of them scores every snapshot again; adding epochs scores only the new snapshots; the
live scores that training asks for as it goes are found again by the stage after it.

A cache entry is ``<snapshot sha256[:20]>-<key[:20]>.json`` (the metrics, the snapshot's epoch and the scoring
time) and ``.png`` beside it (the first ``sample_count`` eval pairs as input | output | target rows).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from pix2pix.atomic import atomic_path, write_json_atomic
from pix2pix.errors import DataError
from pix2pix.evaluation.scoring import evaluate_generator
from pix2pix.evaluation.setup import EvalFiles, EvalSetup
from pix2pix.hashing import file_sha256
from pix2pix.training import model as model_module
from pix2pix.training.generator_file import load_generator

# The code whose bytes decide the scores: this package's modules and the generator's test-time behaviour.
SCORING_CODE = (*sorted(Path(__file__).resolve().parent.glob("*.py")), Path(model_module.__file__).resolve())
SCORE_FORMAT_VERSION = 1


def settings_key(eval_section: Mapping[str, Any], direction: str, files: EvalFiles) -> str:
    """sha256 (hex) of everything besides the weights that decides a snapshot's scores."""
    digest = hashlib.sha256()
    settings = {"eval": dict(eval_section), "direction": direction, "format": SCORE_FORMAT_VERSION}
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    digest.update(files.fingerprint().encode())
    for path in SCORING_CODE:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def grid_image(inputs: np.ndarray, fakes: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Rows ``input | output | target`` of aligned uint8 ``(N, H, W, 3)`` batches as one uint8 ``(N·H, 3·W, 3)`` image."""
    rows = np.concatenate([inputs, fakes, targets], axis=2)
    return rows.reshape(-1, rows.shape[2], 3)


@dataclass(frozen=True)
class SnapshotScore:
    """One snapshot's scores: ``metrics`` (:func:`~pix2pix.evaluation.scoring.score_images`' keys), its sample
    ``grid`` PNG (None when ``sample_count`` is 0), the training statistics it carries, and whether the scores
    came from the cache."""

    epoch: int
    metrics: dict[str, Any]
    eval_seconds: float
    grid: Path | None
    train_stats: dict[str, Any] | None
    cached: bool


def _cache_files(cache_dir: Path, snapshot_sha256: str, key: str) -> tuple[Path, Path]:
    stem = f"{snapshot_sha256[:20]}-{key[:20]}"
    return Path(cache_dir) / f"{stem}.json", Path(cache_dir) / f"{stem}.png"


def read_snapshot_meta(path: Path) -> dict[str, Any]:
    """The small fields of a snapshot file (epoch, train stats, run identity), without building the network."""
    data = torch.load(path, map_location="cpu", weights_only=True)
    return {key: data.get(key) for key in ("epoch", "train_stats", "train_config", "config_hash", "data_fingerprint")}


def score_snapshot(
    path: Path, setup: EvalSetup, device: torch.device, cache_dir: Path, key: str, sample_count: int
) -> SnapshotScore:
    """The scores of the snapshot at ``path`` under ``setup``: from the cache, or computed and cached."""
    meta = read_snapshot_meta(path)
    json_file, grid_file = _cache_files(cache_dir, file_sha256(path), key)
    grid = grid_file if sample_count else None
    if json_file.is_file() and (grid is None or grid.is_file()):
        cached = json.loads(json_file.read_text())
        return SnapshotScore(meta["epoch"], cached["metrics"], cached["eval_seconds"], grid, meta["train_stats"], True)
    generator, _, _ = load_generator(path, device)
    started = time.perf_counter()
    metrics, fakes = evaluate_generator(
        generator, setup.inputs, setup.targets, setup.extractor, setup.reference, device, setup.mode, setup.seed,
        setup.mask_scorer,
    )
    seconds = time.perf_counter() - started
    metrics.pop("eval_seconds", None)  # a timing: kept apart from the numbers that must repeat
    if grid is not None:
        count = min(sample_count, len(fakes))
        with atomic_path(grid) as tmp:
            Image.fromarray(grid_image(setup.inputs[:count], fakes[:count], setup.targets[:count])).save(tmp, format="PNG")
    write_json_atomic(json_file, {"epoch": meta["epoch"], "metrics": metrics, "eval_seconds": seconds, "snapshot": str(path)})
    return SnapshotScore(meta["epoch"], metrics, seconds, grid, meta["train_stats"], False)


def copy_sample_grids(scores: list[SnapshotScore], folder: Path) -> None:
    """``folder/epoch_XXX.png``: each scored epoch's grid (replacing the folder as a whole)."""
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        for score in scores:
            if score.grid is not None:
                shutil.copyfile(score.grid, tmp / f"epoch_{score.epoch:03d}.png")


def check_one_run(snapshots: list[tuple[int, Path]]) -> None:
    """Raise DataError unless the snapshots come from one training run (same config and data)."""
    metas = {path: read_snapshot_meta(path) for _, path in snapshots}
    identities = {(meta["config_hash"], meta["data_fingerprint"]): path for path, meta in metas.items()}
    if len(identities) > 1:
        raise DataError(
            f"{snapshots[0][1].parent}: snapshots of {len(identities)} different training runs "
            f"(e.g. {', '.join(str(p.name) for p in identities.values())}); run `dvc repro train` to rebuild them"
        )
