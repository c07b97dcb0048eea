"""Cityscapes prepared the pix2pix paper's way: labelIds → the 19 official trainIds, ignore black, test withheld.

The oracles below are copied from the official label definitions, cityscapesScripts' table
(github.com/mcordts/cityscapesScripts, cityscapesscripts/helpers/labels.py, columns id, trainId, name, color),
written out here on purpose rather than imported: they check the table in pix2pix/data/cityscapes.py. The
fixtures (tests/builders.py ``cityscapes_folder``) are in the published layout, with every labelId 0..33 in the
train/val maps and all-zero maps in ``gtFine/test``, as the public release has them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix.data.cityscapes import WITHHELD_REASON
from pix2pix.data.palette import VOID_COLOUR, colour_map
from pix2pix.data.prepare import PrepareConfig, prepare_pairs, summary_lines
from pix2pix.data.split import SplitConfig, write_split
from pix2pix.data.store import open_pairs
from pix2pix.errors import DataError
from tests import builders

# labels.py: trainId of labelIds 0..33 (255 = ignore), in id order.
OFFICIAL_TRAIN_ID_OF_LABEL_ID = (
    255, 255, 255, 255, 255, 255, 255, 0, 1, 255, 255, 2, 3, 4, 255, 255, 255, 5, 255, 6, 7, 8, 9, 10, 11, 12, 13,
    14, 15, 255, 255, 16, 17, 18,
)
# labels.py: name and color of trainIds 0..18.
OFFICIAL_TRAIN_CLASSES = (
    ("road", (128, 64, 128)), ("sidewalk", (244, 35, 232)), ("building", (70, 70, 70)), ("wall", (102, 102, 156)),
    ("fence", (190, 153, 153)), ("pole", (153, 153, 153)), ("traffic light", (250, 170, 30)),
    ("traffic sign", (220, 220, 0)), ("vegetation", (107, 142, 35)), ("terrain", (152, 251, 152)),
    ("sky", (70, 130, 180)), ("person", (220, 20, 60)), ("rider", (255, 0, 0)), ("car", (0, 0, 142)),
    ("truck", (0, 0, 70)), ("bus", (0, 60, 100)), ("train", (0, 80, 100)), ("motorcycle", (0, 0, 230)),
    ("bicycle", (119, 11, 32)),
)
EGO_VEHICLE, OUT_OF_ROI = 1, 3  # labels.py ids of two ignore labels
SIZE = (32, 64)  # the fixtures' own size: no resize, so every pixel can be checked


def expected_colours(label_ids: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8: the official trainId colour of each labelId, ignore black."""
    colours = [OFFICIAL_TRAIN_CLASSES[t][1] if t != 255 else VOID_COLOUR for t in OFFICIAL_TRAIN_ID_OF_LABEL_ID]
    lookup = np.array(colours, dtype=np.uint8)
    return lookup[label_ids]


def prepared(folder: Path, out: Path, **settings: object) -> dict:
    return prepare_pairs(folder, out, PrepareConfig(image_size=SIZE, **settings), workers=1)


def label_file(folder: Path, name: str, suffix: str = "_gtFine_labelIds") -> Path:
    return folder / "gtFine" / f"{name}{suffix}.png"


def test_label_ids_become_the_official_train_id_colours_pixel_by_pixel(tmp_path: Path) -> None:
    folder = builders.cityscapes_folder(tmp_path / "cityscapes")
    manifest = prepared(folder, tmp_path / "out")
    masks = open_pairs(tmp_path / "out" / "pairs.npy")[:, 0]
    for name, mask in zip(manifest["names"], masks):
        label_ids = np.asarray(Image.open(label_file(folder, name)))
        assert set(np.unique(label_ids).tolist()) == set(range(34))  # every labelId of the table is in the fixture
        np.testing.assert_array_equal(mask, expected_colours(label_ids), err_msg=name)


def test_ignore_labels_are_painted_black_and_left_out_of_the_classes(tmp_path: Path) -> None:
    folder = builders.cityscapes_folder(tmp_path / "cityscapes")
    manifest = prepared(folder, tmp_path / "out")
    name = manifest["names"][0]
    label_ids = np.asarray(Image.open(label_file(folder, name)))
    mask = open_pairs(tmp_path / "out" / "pairs.npy")[0, 0]
    for ignored in (EGO_VEHICLE, OUT_OF_ROI):
        assert (mask[label_ids == ignored] == VOID_COLOUR).all()
    assert manifest["void_ids"] == [255] and manifest["void_share"] > 0
    assert [c["id"] for c in manifest["classes"]] == list(range(19))


def test_manifest_palette_and_class_names_are_the_19_official_train_classes(tmp_path: Path) -> None:
    manifest = prepared(builders.cityscapes_folder(tmp_path / "cityscapes"), tmp_path / "out")
    assert manifest["class_names"] == [name for name, _ in OFFICIAL_TRAIN_CLASSES]
    assert manifest["palette"] == [list(colour) for _, colour in OFFICIAL_TRAIN_CLASSES]
    assert any("trainIds" in note for note in manifest["notes"])


def test_test_folder_is_skipped_with_the_reason_and_val_becomes_the_test_split(tmp_path: Path) -> None:
    manifest = prepared(builders.cityscapes_folder(tmp_path / "cityscapes"), tmp_path / "out")
    assert [s["name"] for s in manifest["skipped"]] == ["test/berlin/berlin_000000_000019"]
    assert manifest["skipped"][0]["reason"] == WITHHELD_REASON and "withheld" in WITHHELD_REASON
    assert manifest["counts"] == {"pairs": 3, "skipped": 1, "unmatched": 0}
    assert any(WITHHELD_REASON in note for note in manifest["notes"])
    lines = summary_lines(manifest, tmp_path / "out")
    assert not any("skipped test/" in line for line in lines)  # the note says it, once
    split = write_split(tmp_path / "out", tmp_path / "splits", SplitConfig(seed=0, test_fraction=0.5))
    assert split["mode"] == "given" and split["names"]["test"] == ["val/frankfurt/frankfurt_000000_000019"]


def test_a_folder_with_only_the_test_labels_is_refused_in_one_line(tmp_path: Path) -> None:
    folder = builders.cityscapes_folder(tmp_path / "cityscapes")
    for split in ("train", "val"):
        shutil.rmtree(folder / "leftImg8bit" / split)
        shutil.rmtree(folder / "gtFine" / split)
    with pytest.raises(DataError, match=r"all 1 pairs left out \(official Cityscapes test labels are withheld") as err:
        prepared(folder, tmp_path / "out")
    assert "\n" not in str(err.value)


def test_train_ids_files_are_read_as_train_ids(tmp_path: Path) -> None:
    folder = builders.cityscapes_folder(tmp_path / "cityscapes")
    name = "train/aachen/aachen_000000_000019"
    label_ids = np.asarray(Image.open(label_file(folder, name)))
    train_ids = np.asarray(OFFICIAL_TRAIN_ID_OF_LABEL_ID, dtype=np.uint8)[label_ids]
    label_file(folder, name).unlink()  # layouts.py falls back to the trainIds file
    label_file(folder, name, "_gtFine_trainIds").write_bytes(builders.png_bytes(train_ids, "L"))
    manifest = prepared(folder, tmp_path / "out")
    mask = open_pairs(tmp_path / "out" / "pairs.npy")[manifest["names"].index(name), 0]
    np.testing.assert_array_equal(mask, expected_colours(label_ids))


def test_an_id_that_is_no_label_id_skips_the_pair_naming_file_and_id(tmp_path: Path) -> None:
    folder = builders.cityscapes_folder(tmp_path / "cityscapes")
    name = "train/aachen/aachen_000001_000019"
    label_ids = np.asarray(Image.open(label_file(folder, name))).copy()
    label_ids[0, 0] = 40
    label_file(folder, name).write_bytes(builders.png_bytes(label_ids, "L"))
    manifest = prepared(folder, tmp_path / "out")
    reasons = {s["name"]: s["reason"] for s in manifest["skipped"]}
    assert f"{name}_gtFine_labelIds.png: ids [40] are no Cityscapes labelIds" in reasons[name]


def test_an_explicit_palette_reads_the_label_ids_as_they_are(tmp_path: Path) -> None:
    palette = tuple(tuple(int(v) for v in c) for c in colour_map(34).tolist()[1:] + [[1, 2, 3]])  # no black: void 255
    manifest = prepared(builders.cityscapes_folder(tmp_path / "cityscapes"), tmp_path / "out", palette=palette)
    assert len(manifest["palette"]) == 34 and manifest["class_names"][7] == "class_7"
    assert not any("trainIds" in note for note in manifest["notes"])
