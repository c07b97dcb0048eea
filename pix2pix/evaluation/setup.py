"""Everything fixed about scoring a run's generators: the test-time mode, the eval set, the Inception network, the
mask-consistency scorer and the notes that explain the numbers (text, kept out of the metrics files).

The `evaluate` stage, the live scores during training and `pix2pix evaluate` all build it here, from the files of
the `reference`, `fetch_inception` and `segmenter` stages (:class:`EvalFiles`) and the ``eval`` params section.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pix2pix.errors import ConfigError, DataError
from pix2pix.evaluation.image_metrics import IS_SPLITS
from pix2pix.evaluation.inception import IS_UNAVAILABLE, InceptionExtractor
from pix2pix.evaluation.inception_files import load_network_choice
from pix2pix.evaluation.scoring import Reference, load_reference, split_direction
from pix2pix.evaluation.segmentation import SEGMENTER_FILE, MaskScorer, class_maps, cityscapes_fcn_note, load_segmenter
from pix2pix.hashing import file_sha256
from pix2pix.training.model import InferenceMode

SEGMENTER_SCORES_FILE = "scores.json"


@dataclass(frozen=True)
class EvalFiles:
    """Where the scoring inputs are: the reference features, the Inception choice and the segmenter folder."""

    reference: Path
    inception_dir: Path
    segmenter_dir: Path

    def present(self) -> bool:
        """Whether every input exists (they may not yet while training runs before the other stages)."""
        return self.reference.is_file() and self.inception_dir.is_dir() and (self.segmenter_dir / SEGMENTER_SCORES_FILE).is_file()

    def fingerprint(self) -> str:
        """sha256 of every input file's sha256: scores computed from other inputs never count as these."""
        files = [self.reference, *sorted(self.inception_dir.glob("*.json")), *sorted(self.segmenter_dir.rglob("*"))]
        digest = hashlib.sha256()
        for path in files:
            if path.is_file():
                digest.update(f"{path.name}\t{file_sha256(path)}\n".encode())
        return digest.hexdigest()


def inference_mode(eval_section: dict[str, Any]) -> InferenceMode:
    """The test-time mode of ``eval.batchnorm``, ``eval.inference_dropout`` and ``eval.batch_size``."""
    return InferenceMode(
        batchnorm=eval_section["batchnorm"], dropout=eval_section["inference_dropout"], batch_size=eval_section["batch_size"]
    )


def read_segmenter_scores(segmenter_dir: Path) -> dict[str, Any]:
    """The `segmenter` stage's record: ``applicable``, ``reason`` and the real-photo ceiling (when applicable)."""
    path = Path(segmenter_dir) / SEGMENTER_SCORES_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: unreadable ({error}); run `dvc repro segmenter`") from error


def mask_scorer(
    direction: str, inputs: np.ndarray, device: torch.device, segmenter_dir: Path
) -> tuple[MaskScorer | None, str]:
    """The mask-consistency scorer of the eval inputs, or None; and a note saying what was scored or why not."""
    record = read_segmenter_scores(segmenter_dir)
    if not record["applicable"]:
        return None, f"mask consistency not computed: {record['reason']}"
    if direction != "AtoB":
        return None, "mask consistency not computed: direction BtoA generates label maps, not photos to segment"
    network, spec = load_segmenter(Path(segmenter_dir) / SEGMENTER_FILE, device)
    note = (
        f"mask consistency: {Path(segmenter_dir) / SEGMENTER_FILE} (U-Net, {record['parameters']:,} parameters, trained on "
        f"{record['train_images']} real train photos) segments the generated photos; classes "
        f"{', '.join(spec.class_names)}; void ids {list(spec.void_ids)} left out"
    )
    return MaskScorer(network, spec, class_maps(np.ascontiguousarray(inputs), spec), device), note


@dataclass
class EvalSetup:
    """Everything fixed about a stage's evaluations: the eval set, the networks that score it and the notes."""

    reference: Reference
    extractor: InceptionExtractor
    inputs: np.ndarray
    targets: np.ndarray
    mode: InferenceMode
    seed: int
    mask_scorer: MaskScorer | None
    notes: dict[str, str]


def check_inception_score_images(reference: Reference, path: Path) -> None:
    """Raise ConfigError when the Inception Score is on but the eval set is smaller than IS needs."""
    if reference.network_kind == "full" and len(reference.indices) < IS_SPLITS:
        raise ConfigError(
            f"{path}: the Inception Score needs at least {IS_SPLITS} evaluation images, the eval set has "
            f"{len(reference.indices)}: raise eval.num_images to {IS_SPLITS} or more (0 = all test pairs) or add test pairs"
        )


def eval_setup(
    eval_section: dict[str, Any], direction: str, test_pairs: np.ndarray, device: torch.device, files: EvalFiles
) -> EvalSetup:
    """Load the reference features, the Inception network and the segmenter; take the eval subset of ``test_pairs``."""
    reference = load_reference(files.reference)
    check_inception_score_images(reference, files.reference)
    extractor = load_network_choice(files.inception_dir, device)
    inputs, targets = split_direction(np.asarray(test_pairs[reference.indices]), direction)
    scorer, mask_note = mask_scorer(direction, inputs, device, files.segmenter_dir)
    mode = inference_mode(eval_section)
    notes = {
        "inception": f"{extractor.kind} network ({extractor.source.name})",
        "inception_score": IS_UNAVAILABLE if not extractor.has_classifier else "computed with the full network",
        "test_time": mode.describe(),
        "mask_consistency": mask_note,
    }
    protocol = cityscapes_fcn_note(scorer.spec.class_names) if scorer is not None else None
    if protocol is not None:
        notes["cityscapes_protocol"] = protocol
    return EvalSetup(reference, extractor, inputs, targets, mode, eval_section["seed"], scorer, notes)
