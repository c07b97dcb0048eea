"""DVC stage `reference`: Inception features of the real test targets, computed once per data/split/size/direction."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from pix2pix.evaluation.eval_set import eval_indices
from pix2pix.evaluation.scoring import compute_reference, save_reference, split_direction
from pix2pix.evaluation.inception_files import load_network_choice
from pix2pix.devices import pick_device
from pix2pix.data.store import open_pairs
from stages.common import run_stage
from stages.paths import INCEPTION_DIR, REFERENCE_FILE, TEST_PAIRS

USES = ("direction", "eval.seed", "eval.num_images")


def main(params: dict[str, Any]) -> None:
    test = open_pairs(TEST_PAIRS)
    indices = eval_indices(len(test), params["eval"]["num_images"], params["eval"]["seed"])
    # Read only the evaluated pairs: the test split is a view of the pairs store, not an array of its own.
    _, targets = split_direction(test[indices], params["direction"])
    extractor = load_network_choice(INCEPTION_DIR, pick_device())
    reference = replace(compute_reference(extractor, targets, np.arange(len(indices))), indices=indices)
    save_reference(reference, REFERENCE_FILE)
    print(f"reference features: {len(indices)} real test images, {extractor.kind} Inception → {REFERENCE_FILE}")


if __name__ == "__main__":
    run_stage(USES, main)
