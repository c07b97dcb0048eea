"""The pix2pix paper's Cityscapes FCN-score: our mask scores over the 19 trainIds, under the protocol's names.

The 19 class names are those of cityscapesScripts' labels.py (github.com/mcordts/cityscapesScripts,
cityscapesscripts/helpers/labels.py), as tests/data/test_cityscapes.py checks them against the table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix.data.cityscapes import LABEL_ID_TO_TRAIN_ID, TRAIN_CLASS_NAMES, TRAIN_PALETTE
from pix2pix.data.prepare import PrepareConfig, prepare_pairs
from pix2pix.data.store import open_pairs
from pix2pix.evaluation.segmentation import (
    IGNORE_INDEX, LabelSpec, class_maps, cityscapes_fcn_note, label_spec_from_manifest, mask_scores,
)
from pix2pix.evaluation.summary import summarise
from pix2pix.training.model import InferenceMode
from tests import builders

CITYSCAPES = LabelSpec(np.asarray(TRAIN_PALETTE), TRAIN_CLASS_NAMES, (255,))
PROTOCOL = ("cityscapes_fcn_per_pixel_acc", "cityscapes_fcn_per_class_acc", "cityscapes_fcn_class_iou")


def known_confusion() -> np.ndarray:
    """Rows true, columns predicted: road 6 right 2 as sidewalk; sidewalk 3 right 1 as road; building 4 as road."""
    matrix = np.zeros((19, 19), dtype=np.int64)
    matrix[0, 0], matrix[0, 1], matrix[1, 1], matrix[1, 0], matrix[2, 0] = 6, 2, 3, 1, 4
    return matrix


def test_summary_gives_the_three_protocol_numbers_equal_to_the_mask_scores() -> None:
    scores = mask_scores(known_confusion(), CITYSCAPES)
    # By hand: pixel 9/16; class mean(6/8, 3/4, 0/4); IoU mean(6/13, 3/6, 0/4) (classes never true nor predicted out).
    assert scores == pytest.approx({"mask_pixel_acc": 9 / 16, "mask_class_acc": 0.5, "mask_miou": (6 / 13 + 0.5) / 3})
    real = {"mask_pixel_acc_real": 0.8, "mask_class_acc_real": 0.3, "mask_miou_real": 0.2}
    summary = summarise([], scores, InferenceMode(), {**real, "classes": list(TRAIN_CLASS_NAMES)})
    mask = [scores["mask_pixel_acc"], scores["mask_class_acc"], scores["mask_miou"]]
    assert [summary[name] for name in PROTOCOL] == mask
    assert [summary[f"{name}_real"] for name in PROTOCOL] == [0.8, 0.3, 0.2]


def test_other_classes_get_no_protocol_numbers() -> None:
    scores = mask_scores(known_confusion(), CITYSCAPES)
    summary = summarise([], scores, InferenceMode(), {"classes": [f"class_{i}" for i in range(19)]})
    assert not any(name.startswith("cityscapes_") for name in summary) and summary["mask_pixel_acc"] == 9 / 16
    assert not any(name.startswith("cityscapes_") for name in summarise([], {}, InferenceMode(), {}))


def test_note_says_our_segmenter_stands_in_for_the_fcn_and_quotes_the_paper() -> None:
    note = cityscapes_fcn_note(list(TRAIN_CLASS_NAMES))
    assert note is not None and "FCN-8s" in note and "0.66 / 0.23 / 0.17" in note and "approximately" in note
    assert all(name in note for name in PROTOCOL)
    assert cityscapes_fcn_note(["road"]) is None


def test_the_scored_truth_of_a_prepared_cityscapes_a_side_is_its_train_ids_with_ignore_left_out(tmp_path: Path) -> None:
    folder = builders.cityscapes_folder(tmp_path / "cityscapes")
    manifest = prepare_pairs(folder, tmp_path / "out", PrepareConfig(image_size=(32, 64)), workers=1)
    spec, _ = label_spec_from_manifest(manifest)
    assert spec.palette.tolist() == [list(c) for c in TRAIN_PALETTE]
    assert (spec.class_names, spec.void_ids) == (TRAIN_CLASS_NAMES, (255,))
    truth = class_maps(np.asarray(open_pairs(tmp_path / "out" / "pairs.npy")[:, 0]), spec)
    for name, scored in zip(manifest["names"], truth):
        label_ids = np.asarray(Image.open(folder / "gtFine" / f"{name}_gtFine_labelIds.png"))
        train_ids = LABEL_ID_TO_TRAIN_ID[label_ids]
        np.testing.assert_array_equal(scored, np.where(train_ids == 255, IGNORE_INDEX, train_ids))


def test_translate_reads_a_raw_label_ids_map_as_the_train_ids_a_cityscapes_model_knows() -> None:
    from pix2pix.evaluation.translate import input_reading, read_input

    description = {"input_kind": "label_map", "palette": [list(c) for c in TRAIN_PALETTE],
                   "class_names": list(TRAIN_CLASS_NAMES), "void_ids": [255]}
    label_ids = np.array([[7, 8, 11], [26, 1, 3]], dtype=np.uint8)  # road, sidewalk, building, car, ego vehicle, out of roi
    data = builders.png_bytes(label_ids, "L")
    reading = input_reading(description, None, None)
    painted, is_label_map = read_input(data, "frankfurt_000000_000294_gtFine_labelIds.png", reading, reading.coding())
    train_ids = LABEL_ID_TO_TRAIN_ID[label_ids]
    expected = np.asarray(TRAIN_PALETTE, dtype=np.uint8)[np.minimum(train_ids, 18)]
    expected[train_ids == 255] = 0  # ignore: black, as prepare paints it
    assert is_label_map and np.array_equal(painted, expected)
