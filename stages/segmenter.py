"""DVC stage `segmenter`: the segmentation network of the mask-consistency score, trained on the real train photos.

Writes models/segmenter/segmenter.pt and models/segmenter/scores.json: the network's scores on the real photos
of the eval subset of the test split (the ceiling a generator can reach: the paper's "ground truth" row), or,
for data whose A side is no label map, ``applicable: false`` and the reason (then no network).
"""

from __future__ import annotations

import logging
from typing import Any

from pix2pix.atomic import atomic_path, write_json_atomic
from pix2pix.data.store import open_pairs, read_manifest
from pix2pix.devices import pick_device
from pix2pix.evaluation.eval_set import eval_indices
from pix2pix.evaluation.segmentation import (
    REAL_METRIC_NAMES, SEGMENTER_FILE, SegmenterConfig, label_spec_from_manifest, mask_scores, real_photo_confusion,
    save_segmenter, train_segmenter,
)
from stages.common import run_stage
from stages.paths import PREPARED_DIR, SEGMENTER_DIR, SEGMENTER_SCORES, TEST_PAIRS, TRAIN_PAIRS

USES = ("eval.seed", "eval.num_images", "eval.segmenter")


def main(params: dict[str, Any]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    spec, reason = label_spec_from_manifest(read_manifest(PREPARED_DIR))
    with atomic_path(SEGMENTER_DIR) as tmp:
        tmp.mkdir(parents=True)
        if spec is None:
            write_json_atomic(tmp / SEGMENTER_SCORES.name, {"applicable": False, "reason": reason})
            print(f"segmenter not trained: {reason}")
            return
        device = pick_device()
        options = params["eval"]["segmenter"]
        cfg = SegmenterConfig(
            num_classes=spec.num_classes, width=options["width"], epochs=options["epochs"],
            batch_size=options["batch_size"], lr=float(options["lr"]), seed=params["eval"]["seed"],
        )
        train = open_pairs(TRAIN_PAIRS)
        network = train_segmenter(
            train, spec, cfg, device,
            progress=lambda epoch, loss: logging.info("segmenter epoch %d/%d: loss %.4f", epoch, cfg.epochs, loss),
        )
        save_segmenter(tmp / SEGMENTER_FILE, network, cfg, spec, train.shape[2:4])
        test = open_pairs(TEST_PAIRS)
        chosen = eval_indices(len(test), params["eval"]["num_images"], params["eval"]["seed"])
        real = mask_scores(real_photo_confusion(network, test, chosen, spec, device), spec)
        ceiling = {f"{name}_real": value for name, value in real.items()}
        record = {
            "applicable": True, "reason": None, **ceiling,
            "parameters": sum(p.numel() for p in network.parameters()),
            "train_images": len(train), "test_images": len(chosen), "classes": list(spec.class_names),
        }
        write_json_atomic(tmp / SEGMENTER_SCORES.name, record)
    print("segmenter on the real test photos: " + ", ".join(f"{name} {record[name]:.3f}" for name in REAL_METRIC_NAMES)
          + f" → {SEGMENTER_DIR}")


if __name__ == "__main__":
    run_stage(USES, main)
