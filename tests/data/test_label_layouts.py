"""Label-map datasets as they are published: their layouts, classes, palettes and void ids through `prepare`."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pix2pix.cli import app
from pix2pix.data.images import decode_photo
from pix2pix.data.layouts import LABEL_MAP_LAYOUTS, detect_layout
from pix2pix.data.palette import CAR_CLASSES, CAR_PALETTE, VOID_COLOUR, colour_map
from pix2pix.data.prepare import PrepareConfig, prepare_pairs
from pix2pix.data.split import SplitConfig, write_split
from pix2pix.data.store import open_pairs
from pix2pix.errors import DataError
from tests import builders

SIZE = (16, 16)


def prepared(folder: Path, out: Path, **settings: object) -> dict:
    return prepare_pairs(folder, out, PrepareConfig(image_size=SIZE, **settings), workers=1)


def test_camvid_folder_prepares_with_no_flags_into_twelve_classes_keeping_its_split(tmp_path: Path) -> None:
    folder = builders.camvid_folder(tmp_path / "CamVid")
    result = CliRunner().invoke(app, ["prepare", str(folder), "--out", str(tmp_path / "out"), "--image-size", "16", "--workers", "1"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["layout"] == "camvid" and manifest["counts"] == {"pairs": 6, "skipped": 0, "unmatched": 0}
    assert manifest["palette"] == colour_map(12).tolist() and manifest["class_names"] == [f"class_{i}" for i in range(12)]
    assert manifest["void_ids"] == []
    assert "12 classes: 0 class_0 " in result.output
    summary = write_split(tmp_path / "out", tmp_path / "splits", SplitConfig(seed=0, test_fraction=0.5))
    assert summary["mode"] == "given" and summary["counts"] == {"train": 3, "test": 3}
    assert (summary["palette"], summary["class_names"], summary["void_ids"]) == (
        manifest["palette"], manifest["class_names"], manifest["void_ids"]
    )
    assert sorted(summary["names"]["test"]) == ["test/0001TP_test0000", "test/0001TP_test0001", "val/0001TP_val0000"]


def test_camvid_void_id_is_painted_black_and_recorded(tmp_path: Path) -> None:
    folder = builders.camvid_folder(tmp_path / "CamVid", {"train": 2})
    manifest = prepared(folder, tmp_path / "out", void_ids=(11,))
    assert manifest["void_ids"] == [11] and len(manifest["palette"]) == 11 and manifest["void_share"] > 0
    assert [c["id"] for c in manifest["classes"]] == list(range(11))
    # Id 0 (sky) would be black under `auto`, like the void pixels: it takes a spare colour so A keeps them apart.
    assert VOID_COLOUR not in {tuple(c) for c in manifest["palette"]}
    assert manifest["palette"][1:] == colour_map(11).tolist()[1:]
    masks = open_pairs(tmp_path / "out" / "pairs.npy")[:, 0]
    colours = {tuple(c) for c in masks.reshape(-1, 3).tolist()}
    assert colours == {tuple(c) for c in manifest["palette"]} | {VOID_COLOUR}


def test_a_given_palette_that_colours_a_class_like_the_void_pixels_is_refused(tmp_path: Path) -> None:
    folder = builders.camvid_folder(tmp_path / "CamVid", {"train": 2})
    palette = tuple(tuple(int(v) for v in c) for c in colour_map(12).tolist())  # id 0 black, as void pixels are
    with pytest.raises(DataError, match="void colour"):
        prepared(folder, tmp_path / "out", void_ids=(11,), palette=palette)


def test_cityscapes_pairs_leftimg8bit_with_gtfine_label_ids_and_voids_255(tmp_path: Path) -> None:
    folder = builders.cityscapes_folder(tmp_path / "cityscapes")
    layout = detect_layout(folder)
    assert layout.kind == "cityscapes" and layout.void_ids == (255,)
    assert [(p.name, p.files[1], p.given_split) for p in layout.pairs] == [
        ("train/aachen/aachen_000000_000019", "gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png", "train"),
        ("train/aachen/aachen_000001_000019", "gtFine/train/aachen/aachen_000001_000019_gtFine_labelIds.png", "train"),
        ("val/frankfurt/frankfurt_000000_000019", "gtFine/val/frankfurt/frankfurt_000000_000019_gtFine_labelIds.png", "test"),
    ]
    assert layout.unmatched == []  # _color and _instanceIds files are not pairs of their own
    assert [p.name for p in layout.withheld] == ["test/berlin/berlin_000000_000019"]  # labels not real: test_cityscapes.py
    manifest = prepared(folder, tmp_path / "out")
    assert manifest["void_ids"] == [255] and len(manifest["palette"]) == 19 and manifest["void_share"] > 0


@pytest.mark.parametrize(("photo_dir", "label_dir", "kind"), [
    ("images", "masks", "kaggle"), ("images", "labels", "labels"), ("img", "ann", "labels"), ("img", "annotations", "labels"),
])
def test_photo_and_label_folders_nested_once_are_paired_by_stem(tmp_path: Path, photo_dir: str, label_dir: str, kind: str) -> None:
    builders.label_folder(tmp_path / "data" / "my-set", photo_dir, label_dir)
    manifest = prepared(tmp_path / "data", tmp_path / "out")
    assert manifest["layout"] == kind and manifest["names"] == ["000", "001", "002"]
    assert len(manifest["palette"]) == 6


def test_split_folders_inside_images_and_labels_keep_their_split(tmp_path: Path) -> None:
    # ADE20K-style: images/training + annotations/validation
    for split in ("training", "validation"):
        builders.label_folder(tmp_path / "tmp" / split, "images", "annotations", count=2)
        for kind in ("images", "annotations"):
            shutil.copytree(tmp_path / "tmp" / split / kind, tmp_path / "ade" / kind / split)
    manifest = prepared(tmp_path / "ade", tmp_path / "out")
    assert manifest["names"] == ["training/000", "training/001", "validation/000", "validation/001"]
    assert manifest["given_splits"] == ["train", "train", "test", "test"]


def test_pre_split_train_and_test_trees_keep_their_split(tmp_path: Path) -> None:
    for split, count in (("train", 3), ("test", 2)):
        builders.label_folder(tmp_path / "set" / split, "images", "labels", count=count)
    manifest = prepared(tmp_path / "set", tmp_path / "out")
    assert manifest["layout"] == "labels" and manifest["given_splits"] == ["test", "test", "train", "train", "train"]
    assert manifest["names"][:2] == ["test/000", "test/001"]


def test_two_photo_label_pairs_outside_split_folders_are_rejected_by_name(tmp_path: Path) -> None:
    builders.label_folder(tmp_path / "set" / "a", "images", "labels")
    builders.label_folder(tmp_path / "set" / "b", "images", "labels")
    with pytest.raises(DataError, match=r"several image/label folder pairs \(a, b\)"):
        detect_layout(tmp_path / "set")


def test_two_files_for_one_pair_are_rejected_by_name(tmp_path: Path) -> None:
    folder = builders.label_folder(tmp_path / "set", "images", "masks")
    (folder / "images" / "001.png").write_bytes(builders.png_bytes(builders.real_photo(0, (30, 40))))
    with pytest.raises(DataError, match=r"images/001.jpg and .*images/001.png would make the same pair `001`"):
        detect_layout(folder)


def test_two_label_folders_beside_one_photo_folder_are_rejected(tmp_path: Path) -> None:
    folder = builders.label_folder(tmp_path / "set", "images", "masks")
    shutil.copytree(folder / "masks", folder / "labels")
    with pytest.raises(DataError, match=r"several label folders \(masks, labels\)"):
        detect_layout(folder)


def test_kaggle_rgba_masks_as_published_are_read_as_class_ids(tmp_path: Path) -> None:
    members = builders.kaggle_members(3)
    for name in [n for n in members if "/masks/" in n]:
        ids = np.asarray(Image.open(io.BytesIO(members[name])))
        members[name] = builders.png_bytes(np.dstack([ids, ids, ids, np.full_like(ids, 255)]))
    manifest = prepared(builders.write_zip(tmp_path / "k.zip", members), tmp_path / "out")
    assert manifest["counts"]["skipped"] == 0 and manifest["class_names"] == list(CAR_CLASSES)
    assert manifest["palette"] == [list(c) for c in CAR_PALETTE]
    assert [c["id"] for c in manifest["classes"]] == [0, 1, 2, 3, 4]


def test_mask_of_another_size_than_its_photo_is_resized_nearest_with_a_note(tmp_path: Path) -> None:
    folder = builders.label_folder(tmp_path / "set", "images", "labels")
    small = builders.street_labels(0, (15, 20), classes=6)
    (folder / "labels" / "000.png").write_bytes(builders.png_bytes(small, "L"))
    manifest = prepared(folder, tmp_path / "out")
    assert manifest["counts"]["skipped"] == 0 and manifest["resized_masks"] == ["labels/000.png"]
    assert any("resized nearest" in note for note in manifest["notes"])
    masks = open_pairs(tmp_path / "out" / "pairs.npy")[:, 0]
    assert {tuple(c) for c in masks.reshape(-1, 3).tolist()} <= {tuple(c) for c in colour_map(6).tolist()}


def test_dataset_classes_txt_names_the_classes_and_an_explicit_file_wins(tmp_path: Path) -> None:
    folder = builders.label_folder(tmp_path / "set", "images", "labels")
    (folder / "classes.txt").write_text("\n".join(f"name{i}" for i in range(6)) + "\n")
    assert prepared(folder, tmp_path / "out")["class_names"] == [f"name{i}" for i in range(6)]
    (tmp_path / "mine.csv").write_text("id,name\n" + "".join(f"{i},mine{i}\n" for i in range(6)))
    manifest = prepared(folder, tmp_path / "out", classes=str(tmp_path / "mine.csv"))
    assert manifest["class_names"] == [f"mine{i}" for i in range(6)] and manifest["class_file"] == str(tmp_path / "mine.csv")


def test_palette_file_colours_the_masks(tmp_path: Path) -> None:
    folder = builders.label_folder(tmp_path / "set", "images", "labels")
    colours = [[i * 40, 255 - i * 40, 7] for i in range(6)]
    (tmp_path / "palette.json").write_text(json.dumps([{"id": i, "name": f"c{i}", "colour": c} for i, c in enumerate(colours)]))
    manifest = prepared(folder, tmp_path / "out", palette=str(tmp_path / "palette.json"))
    assert manifest["palette"] == colours and manifest["class_names"] == [f"c{i}" for i in range(6)]
    masks = open_pairs(tmp_path / "out" / "pairs.npy")[:, 0]
    assert {tuple(c) for c in masks.reshape(-1, 3).tolist()} == {tuple(c) for c in colours}


def test_big_photo_is_decoded_reduced_but_reports_its_stored_size(tmp_path: Path) -> None:
    photo = np.asarray(Image.fromarray(builders.real_photo(0, (100, 150))).resize((3000, 2000)))
    for fmt, data in (("png", builders.png_bytes(photo, "RGBA")), ("jpeg", builders.jpeg_bytes(photo))):
        image, stored_hw = decode_photo(data, f"big.{fmt}", at_least_hw=(256, 256))
        assert stored_hw == (2000, 3000), fmt
        assert 256 <= image.shape[0] < 512 and 256 <= image.shape[1] < 768, (fmt, image.shape)


def test_big_jpeg_turned_by_exif_reports_its_upright_size(tmp_path: Path) -> None:
    photo = Image.fromarray(builders.real_photo(1, (100, 150))).resize((3000, 2000))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to show upright
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", exif=exif.tobytes())
    image, stored_hw = decode_photo(buffer.getvalue(), "turned.jpg", at_least_hw=(256, 256))
    assert stored_hw == (3000, 2000) and image.shape[0] > image.shape[1] >= 256


def _encodings(ids: np.ndarray) -> dict[str, bytes]:
    """The same ids stored every way label maps are published (datasets.md)."""
    opaque = np.full_like(ids, 255)
    p_image = Image.fromarray(ids, "P")
    p_image.putpalette(colour_map(256)[::-1].reshape(-1).tolist())  # a colour table that must not be used
    p_buffer = io.BytesIO()
    p_image.save(p_buffer, format="PNG")
    return {
        "L": builders.png_bytes(ids, "L"),
        "P": p_buffer.getvalue(),
        "I;16": builders.png_bytes(ids.astype(np.uint16)),
        "RGB grey": builders.png_bytes(np.dstack([ids] * 3)),
        "RGBA grey": builders.png_bytes(np.dstack([ids, ids, ids, opaque])),
        "RGB colour": builders.png_bytes(colour_map(256)[ids]),
    }


@pytest.mark.parametrize("encoding", ["P", "I;16", "RGB grey", "RGBA grey", "RGB colour"])
def test_every_label_encoding_prepares_to_the_same_pairs_as_single_channel_ids(tmp_path: Path, encoding: str) -> None:
    stores = {}
    for variant in ("L", encoding):
        folder = builders.label_folder(tmp_path / variant, "images", "labels")
        for mask in sorted((folder / "labels").iterdir()):
            ids = np.asarray(Image.open(mask))
            mask.write_bytes(_encodings(ids)[variant])
        prepared(folder, tmp_path / f"out-{variant}")
        stores[variant] = np.asarray(open_pairs(tmp_path / f"out-{variant}" / "pairs.npy"))
    np.testing.assert_array_equal(stores[encoding], stores["L"])


def test_a_folder_named_images_given_as_root_is_not_paired_with_a_masks_folder_beside_it(tmp_path: Path) -> None:
    builders.label_folder(tmp_path / "outside", "images", "masks")
    layout = detect_layout(tmp_path / "outside" / "images")
    assert layout.kind == "ab"


def test_colour_coded_labels_with_the_datasets_class_dict_csv_are_read_by_its_colours(tmp_path: Path) -> None:
    # The Kaggle copy of CamVid: RGB label images in the dataset's own colours, listed in class_dict.csv (name,r,g,b).
    colours = [(64, 128, 64), (192, 0, 128), (0, 128, 192), (0, 128, 64), (128, 0, 0), (64, 0, 128)]
    folder = builders.label_folder(tmp_path / "camvid", "images", "labels")
    rng = np.random.default_rng(0)
    for mask in sorted((folder / "labels").iterdir()):
        colour = np.asarray(colours, dtype=np.int16)[np.asarray(Image.open(mask))]
        colour[::7, ::3] += rng.integers(-9, 10, colour[::7, ::3].shape, dtype=np.int16)  # damaged pixels
        mask.write_bytes(builders.png_bytes(colour.clip(0, 255).astype(np.uint8)))
    (folder / "class_dict.csv").write_text("name,r,g,b\n" + "".join(f"c{i},{r},{g},{b}\n" for i, (r, g, b) in enumerate(colours)))
    manifest = prepared(folder, tmp_path / "out")
    assert manifest["counts"]["skipped"] == 0 and manifest["class_file"] == "class_dict.csv"
    assert manifest["palette"] == [list(c) for c in colours] and manifest["class_names"] == [f"c{i}" for i in range(6)]
    assert manifest["off_palette_fraction"] > 0.03  # the damaged pixels, snapped
    masks = open_pairs(tmp_path / "out" / "pairs.npy")[:, 0]
    assert {tuple(c) for c in masks.reshape(-1, 3).tolist()} <= set(colours)


@pytest.mark.parametrize("build", [
    lambda root: builders.camvid_folder(root, {"train": 2}),
    builders.cityscapes_folder,
    lambda root: builders.label_folder(root, "images", "labels"),
], ids=["camvid", "cityscapes", "labels"])
def test_every_label_layout_is_one_whose_a_side_the_trainer_resizes_nearest(tmp_path: Path, build) -> None:
    # The train stage jitters the stored A side nearest-neighbour exactly for LABEL_MAP_LAYOUTS.
    manifest = prepared(build(tmp_path / "data"), tmp_path / "out")
    assert manifest["layout"] in LABEL_MAP_LAYOUTS and manifest["palette"] is not None
