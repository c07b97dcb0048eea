"""prepare: every supported layout end to end, and bad input that is named, skipped or refused."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix.data.prepare import PrepareConfig
from pix2pix.errors import DataError
from pix2pix.data.palette import CAR_CLASSES, CAR_PALETTE, palette_array
from pix2pix.data.prepare import prepare_pairs
from pix2pix.data.sample import write_sample_archive
from pix2pix.data.sample_scene import SCENE_CLASSES, SCENE_PALETTE
from pix2pix.data.store import open_pairs, read_manifest
from tests import builders


def config(size=(32, 32), policy="stretch", floor=1, panel_order="auto") -> PrepareConfig:
    return PrepareConfig(image_size=size, resize_policy=policy, palette=CAR_PALETTE, min_valid_pairs=floor, panel_order=panel_order)


def only_palette_colours(image: np.ndarray) -> bool:
    colours = {tuple(c) for c in palette_array(CAR_PALETTE).tolist()}
    return {tuple(c) for c in image.reshape(-1, 3).tolist()} <= colours


@pytest.mark.parametrize("nested", [False, True])
def test_kaggle_zip_gives_colour_mask_as_a_and_photo_as_b(tmp_path: Path, nested: bool) -> None:
    archive = builders.write_zip(tmp_path / "cars.zip", builders.kaggle_members(4, nested=nested))
    manifest = prepare_pairs(archive, tmp_path / "out", config(), workers=1)
    pairs = open_pairs(tmp_path / "out" / "pairs.npy")
    assert manifest["layout"] == "kaggle" and pairs.shape == (4, 2, 32, 32, 3)
    assert all(only_palette_colours(pairs[i, 0]) for i in range(4))
    assert not only_palette_colours(pairs[0, 1])  # B is the photo
    assert manifest["names"][0] == "car%20{:02d} (copy)".format(0)  # literal, never URL-decoded
    assert manifest["source_archive_sha256"] and manifest["counts"]["skipped"] == 0


def test_seed_layout_is_swapped_so_a_is_the_mask(tmp_path: Path) -> None:
    archive = builders.write_zip(tmp_path / "seed.zip", builders.seed_members(3))
    manifest = prepare_pairs(archive, tmp_path / "out", config(), workers=2)
    pairs = open_pairs(tmp_path / "out" / "pairs.npy")
    assert manifest["layout"] == "seed"
    assert only_palette_colours(pairs[1, 0]) and not only_palette_colours(pairs[1, 1])
    assert manifest["off_palette_fraction"] == 0.0


def test_seed_layout_under_auto_records_the_car_palette_and_names(tmp_path: Path) -> None:
    archive = builders.write_zip(tmp_path / "seed.zip", builders.seed_members(3))
    manifest = prepare_pairs(archive, tmp_path / "out", PrepareConfig(image_size=(32, 32)), workers=1)
    assert manifest["palette"] == [list(c) for c in CAR_PALETTE] and manifest["class_names"] == list(CAR_CLASSES)
    assert [c["id"] for c in manifest["classes"]] == [0, 1, 2, 3, 4] and manifest["void_ids"] == []


@pytest.mark.parametrize("layout", ["seed", "kaggle"])
def test_sample_prepares_with_the_classes_it_ships(tmp_path: Path, layout: str) -> None:
    # The sample carries car-segmentation/classes.csv (id,name,r,g,b): under `auto` its colours and names win.
    archive = write_sample_archive(tmp_path / "sample.zip", n_pairs=3, seed=1, layout=layout, size_hw=(64, 64))
    manifest = prepare_pairs(archive, tmp_path / "out", PrepareConfig(image_size=(32, 32)), workers=1)
    assert manifest["counts"] == {"pairs": 3, "skipped": 0, "unmatched": 0}
    assert manifest["class_names"] == list(SCENE_CLASSES)
    assert manifest["palette"] == [list(colour) for colour in SCENE_PALETTE]
    masks = open_pairs(tmp_path / "out" / "pairs.npy")[:, 0]
    assert {tuple(c) for c in masks.reshape(-1, 3).tolist()} <= set(SCENE_PALETTE)


def test_blended_seed_mask_pixels_are_snapped_and_counted(tmp_path: Path) -> None:
    members = builders.seed_members(2)
    image = np.asarray(Image.open(io.BytesIO(members["car-segmentation/train/000.png"]))).copy()
    image[0, 64:74] = (250, 5, 3)  # ten right-half pixels slightly off red
    members["car-segmentation/train/000.png"] = builders.png_bytes(image)
    archive = builders.write_zip(tmp_path / "seed.zip", members)
    manifest = prepare_pairs(archive, tmp_path / "out", config(size=(64, 64)), workers=1)
    assert manifest["off_palette_fraction"] == pytest.approx(10 / (2 * 64 * 64))
    assert only_palette_colours(open_pairs(tmp_path / "out" / "pairs.npy")[0, 0])


@pytest.mark.parametrize("street_first", [True, False])
def test_dayton_four_panel_order_is_detected_and_a_is_aerial(tmp_path: Path, street_first: bool) -> None:
    archive = builders.write_zip(tmp_path / "dayton.zip", builders.dayton4_members(street_first))
    manifest = prepare_pairs(archive, tmp_path / "out", config(), workers=1)
    pairs = open_pairs(tmp_path / "out" / "pairs.npy")
    assert manifest["layout"] == "dayton4" and manifest["street_first"] is street_first
    street = pairs[0, 1].astype(float)
    assert street[:10].mean() - street[-10:].mean() > 100  # B has the sky on top: it is the street view
    assert "-0ABCDEFGHIJKLMNOPQRST.x1.y-2.a3.jpg" in manifest["names"]


def test_dayton_panel_order_param_overrides_detection(tmp_path: Path) -> None:
    archive = builders.write_zip(tmp_path / "dayton.zip", builders.dayton4_members(street_first=True))
    manifest = prepare_pairs(archive, tmp_path / "out", config(panel_order="aerial_street"), workers=1)
    assert manifest["street_first"] is False


def test_dayton_two_file_layout_pairs_overhead_with_streetview(tmp_path: Path) -> None:
    archive = builders.write_zip(tmp_path / "d2.zip", builders.dayton2_members())
    manifest = prepare_pairs(archive, tmp_path / "out", config(), workers=1)
    assert manifest["layout"] == "dayton2" and manifest["counts"]["pairs"] == 4
    assert manifest["names"][0] == "-0ABCDEFGHIJKLMNOPQRST.x1.y-2.a3.jpg"


def test_ab_folder_keeps_its_given_split_and_non_square_size(tmp_path: Path) -> None:
    folder = builders.ab_folder(tmp_path / "facades")
    manifest = prepare_pairs(folder, tmp_path / "out", config(size=(32, 64)), workers=1)
    assert manifest["layout"] == "ab" and open_pairs(tmp_path / "out" / "pairs.npy").shape == (6, 2, 32, 64, 3)
    assert sorted(set(manifest["given_splits"])) == ["test", "train"]
    assert "test/1.jpg" in manifest["names"] and "train/1.jpg" in manifest["names"]


def test_corrupt_photo_is_skipped_and_named(tmp_path: Path) -> None:
    members = builders.kaggle_members(4)
    bad = "car-segmentation/images/car%2002 (copy).png"
    members[bad] = members[bad][:200]  # truncated PNG
    archive = builders.write_zip(tmp_path / "cars.zip", members)
    manifest = prepare_pairs(archive, tmp_path / "out", config(), workers=1)
    assert manifest["counts"] == {"pairs": 3, "skipped": 1, "unmatched": 0}
    assert manifest["skipped"][0]["name"] == "car%2002 (copy)" and bad in manifest["skipped"][0]["reason"]
    assert open_pairs(tmp_path / "out" / "pairs.npy").shape[0] == 3


def test_explicit_palette_missing_a_class_found_in_the_data_names_the_id_and_file(tmp_path: Path) -> None:
    members = builders.kaggle_members(3)
    mask = builders.index_mask(1, (60, 80))
    mask[0, 0] = 7
    members["car-segmentation/masks/car%2001 (copy).png"] = builders.png_bytes(mask, "L")
    with pytest.raises(DataError, match=r"class ids \[7\] that `data.palette` does not define.*7 in car-segmentation/masks/car%2001 \(copy\).png"):
        prepare_pairs(builders.write_zip(tmp_path / "c.zip", members), tmp_path / "out", config(), workers=1)


def test_photo_without_mask_is_reported_unmatched(tmp_path: Path) -> None:
    members = builders.kaggle_members(3)
    del members["car-segmentation/masks/car%2002 (copy).png"]
    manifest = prepare_pairs(builders.write_zip(tmp_path / "c.zip", members), tmp_path / "out", config(), workers=1)
    assert manifest["unmatched"] == ["car-segmentation/images/car%2002 (copy).png"]
    assert manifest["counts"]["pairs"] == 2


def test_too_few_valid_pairs_fails_and_keeps_previous_output(tmp_path: Path) -> None:
    good = builders.write_zip(tmp_path / "good.zip", builders.seed_members(2))
    prepare_pairs(good, tmp_path / "out", config(), workers=1)
    before = (tmp_path / "out" / "pairs.npy").read_bytes()
    with pytest.raises(DataError, match="min_valid_pairs=5"):
        prepare_pairs(good, tmp_path / "out", config(floor=5), workers=1)
    assert (tmp_path / "out" / "pairs.npy").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if "tmp" in p.name or p.name.startswith(".extract")] == []


def test_unknown_layout_names_what_was_found(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("hello")
    with pytest.raises(DataError, match=r"no known layout.*1 files.*\.txt"):
        prepare_pairs(tmp_path / "notes", tmp_path / "out", config(), workers=1)
    assert not (tmp_path / "out").exists()


def test_pad_policy_keeps_aspect_with_black_bars(tmp_path: Path) -> None:
    archive = builders.write_zip(tmp_path / "cars.zip", builders.kaggle_members(1, size_hw=(32, 64)))
    prepare_pairs(archive, tmp_path / "out", config(size=(32, 32), policy="pad"), workers=1)
    photo = open_pairs(tmp_path / "out" / "pairs.npy")[0, 1]
    assert photo[:7].max() == 0 and photo[-7:].max() == 0 and photo[8:24].max() > 0


def test_crop_policy_fills_the_frame(tmp_path: Path) -> None:
    archive = builders.write_zip(tmp_path / "cars.zip", builders.kaggle_members(1, size_hw=(32, 64)))
    prepare_pairs(archive, tmp_path / "out", config(size=(32, 32), policy="crop"), workers=1)
    photo = open_pairs(tmp_path / "out" / "pairs.npy")[0, 1]
    assert photo[:2].max() > 0 and photo[-2:].max() > 0


def test_manifest_records_config_and_a_stable_source_hash(tmp_path: Path) -> None:
    archive = builders.write_zip(tmp_path / "seed.zip", builders.seed_members(2))
    first = prepare_pairs(archive, tmp_path / "a", config(), workers=1)
    second = prepare_pairs(archive, tmp_path / "b", config(), workers=2)
    assert first["source_sha256"] == second["source_sha256"]
    assert read_manifest(tmp_path / "a")["config"]["image_size"] == [32, 32]
    assert (tmp_path / "a" / "pairs.npy").read_bytes() == (tmp_path / "b" / "pairs.npy").read_bytes()
    assert len(list((tmp_path / "a" / "preview").glob("*.png"))) == 2
