"""What the `train` and `evaluate` stages share to score a generator: the test-time mode, the eval set, the
mask-consistency scorer and the notes that explain the numbers (text, kept out of the metrics files)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pix2pix.errors import DataError
from pix2pix.evaluation.inception import IS_UNAVAILABLE, InceptionExtractor
from pix2pix.evaluation.inception_files import load_network_choice
from pix2pix.evaluation.scoring import Reference, load_reference, split_direction
from pix2pix.evaluation.segmentation import SEGMENTER_FILE, MaskScorer, class_maps, load_segmenter
from pix2pix.training.model import InferenceMode
from stages.paths import INCEPTION_DIR, REFERENCE_FILE, SEGMENTER_DIR, SEGMENTER_SCORES

# The params keys this module reads (each stage that uses it lists them in its USES).
EVAL_KEYS = ("direction", "eval.seed", "eval.batchnorm", "eval.batch_size", "eval.inference_dropout")


def inference_mode(params: dict[str, Any]) -> InferenceMode:
    """The test-time mode of ``eval.batchnorm``, ``eval.inference_dropout`` and ``eval.batch_size``."""
    section = params["eval"]
    return InferenceMode(batchnorm=section["batchnorm"], dropout=section["inference_dropout"], batch_size=section["batch_size"])


def read_segmenter_scores() -> dict[str, Any]:
    """The `segmenter` stage's record: ``applicable``, ``reason`` and the real-photo ceiling (when applicable)."""
    try:
        return json.loads(SEGMENTER_SCORES.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"{SEGMENTER_SCORES}: unreadable ({error}); run `dvc repro segmenter`") from error


def mask_scorer(direction: str, inputs: np.ndarray, device: torch.device) -> tuple[MaskScorer | None, str]:
    """The mask-consistency scorer of the eval inputs, or None; and a note saying what was scored or why not."""
    record = read_segmenter_scores()
    if not record["applicable"]:
        return None, f"mask consistency not computed: {record['reason']}"
    if direction != "AtoB":
        return None, "mask consistency not computed: direction BtoA generates label maps, not photos to segment"
    network, spec = load_segmenter(SEGMENTER_DIR / SEGMENTER_FILE, device)
    note = (
        f"mask consistency: {SEGMENTER_DIR / SEGMENTER_FILE} (U-Net, {record['parameters']:,} parameters, trained on "
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


def eval_setup(params: dict[str, Any], test_pairs: np.ndarray, device: torch.device) -> EvalSetup:
    """Load the reference features, the Inception network and the segmenter; take the eval subset of ``test_pairs``."""
    reference = load_reference(REFERENCE_FILE)
    extractor = load_network_choice(INCEPTION_DIR, device)
    inputs, targets = split_direction(np.asarray(test_pairs[reference.indices]), params["direction"])
    scorer, mask_note = mask_scorer(params["direction"], inputs, device)
    mode = inference_mode(params)
    notes = {
        "inception": f"{extractor.kind} network ({extractor.source.name})",
        "inception_score": IS_UNAVAILABLE if not extractor.has_classifier else "computed with the full network",
        "test_time": mode.describe(),
        "mask_consistency": mask_note,
    }
    return EvalSetup(reference, extractor, inputs, targets, mode, params["eval"]["seed"], scorer, notes)
