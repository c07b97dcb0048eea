"""DVC stage `reference`: Inception features of the real test targets, computed once per data/split/size/direction."""

from __future__ import annotations

from typing import Any

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
    _, targets = split_direction(test, params["direction"])
    indices = eval_indices(len(test), params["eval"]["num_images"], params["eval"]["seed"])
    extractor = load_network_choice(INCEPTION_DIR, pick_device())
    reference = compute_reference(extractor, targets, indices)
    save_reference(reference, REFERENCE_FILE)
    print(f"reference features: {len(indices)} real test images, {extractor.kind} Inception → {REFERENCE_FILE}")


if __name__ == "__main__":
    run_stage(USES, main)
