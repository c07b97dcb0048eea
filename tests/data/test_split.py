"""split: deterministic, byte-identical, and faithful to Dayton's official lists."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from pix2pix.data.prepare import PrepareConfig
from pix2pix.data.split import SplitConfig
from pix2pix.errors import DataError
from pix2pix.data.layouts import DAYTON_NAME
from pix2pix.data.palette import CAR_PALETTE
from pix2pix.data.prepare import prepare_pairs
from pix2pix.data.split import location_key, location_plan, official_plan, random_plan, read_name_list, write_split
from pix2pix.data.store import open_pairs
from tests import builders

SHARED_LISTS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "dayton_split"


@pytest.fixture()
def prepared(tmp_path: Path) -> Path:
    archive = builders.write_zip(tmp_path / "seed.zip", builders.seed_members(10, size=32))
    cfg = PrepareConfig(image_size=(32, 32), resize_policy="stretch", palette=CAR_PALETTE, min_valid_pairs=1)
    prepare_pairs(archive, tmp_path / "prepared", cfg, workers=1)
    return tmp_path / "prepared"


def test_same_inputs_give_byte_identical_outputs(prepared: Path, tmp_path: Path) -> None:
    cfg = SplitConfig(seed=3, test_fraction=0.3, mode="auto")
    write_split(prepared, tmp_path / "a", cfg)
    write_split(prepared, tmp_path / "b", cfg)
    for name in ("train.npy", "test.npy", "manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_random_split_sizes_and_disjointness(prepared: Path, tmp_path: Path) -> None:
    summary = write_split(prepared, tmp_path / "s", SplitConfig(seed=3, test_fraction=0.3, mode="random"))
    assert summary["counts"] == {"train": 7, "test": 3}
    assert not set(summary["names"]["train"]) & set(summary["names"]["test"])
    test = open_pairs(tmp_path / "s" / "test.npy")
    all_pairs = open_pairs(prepared / "pairs.npy")
    names = json.loads((prepared / "manifest.json").read_text())["names"]
    assert np.array_equal(test[0], all_pairs[names.index(summary["names"]["test"][0])])


def test_other_seed_gives_other_split() -> None:
    names = [f"n{i:03d}" for i in range(50)]
    assert random_plan(names, 1, 0.2).indices != random_plan(names, 2, 0.2).indices


def test_random_split_does_not_depend_on_name_order() -> None:
    names = [f"n{i:03d}" for i in range(30)]
    forward = random_plan(names, 7, 0.2)
    backward = random_plan(names[::-1], 7, 0.2)
    assert {names[i] for i in forward.indices["test"]} == {names[::-1][i] for i in backward.indices["test"]}


def test_official_lists_drop_junk_lines_and_report_unresolved(tmp_path: Path) -> None:
    names = list(builders.DAYTON_NAMES[:4])
    (tmp_path / "train.txt").write_text(".\n..\n" + "\n".join(names[:2]) + "\nmissing.x1.y1.a1.jpg\n\n")
    (tmp_path / "test.txt").write_text(names[2] + "\n")
    lists = {"train": read_name_list(tmp_path / "train.txt"), "test": read_name_list(tmp_path / "test.txt")}
    plan = official_plan(names, lists)
    assert plan.indices == {"train": [0, 1], "test": [2]}
    assert plan.unresolved == {"train": ["missing.x1.y1.a1.jpg"], "test": []}
    assert plan.unlisted == [names[3]]


def test_location_split_never_shares_a_panorama() -> None:
    names = [f"{chr(65 + i % 10) * 22}.x{i}.y0.a0.jpg" for i in range(60)]
    plan = location_plan(names, seed=0, test_fraction=0.3)
    train = {location_key(names[i]) for i in plan.indices["train"]}
    test = {location_key(names[i]) for i in plan.indices["test"]}
    assert train and test and not train & test


def test_official_mode_without_lists_is_an_error(prepared: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="split lists"):
        write_split(prepared, tmp_path / "s", SplitConfig(seed=0, test_fraction=0.2, mode="official"))
    assert not (tmp_path / "s").exists()


def test_given_train_test_folders_are_kept(tmp_path: Path) -> None:
    folder = builders.ab_folder(tmp_path / "facades")
    cfg = PrepareConfig(image_size=(32, 32), resize_policy="stretch", palette=CAR_PALETTE, min_valid_pairs=1)
    prepare_pairs(folder, tmp_path / "prepared", cfg, workers=1)
    summary = write_split(tmp_path / "prepared", tmp_path / "s", SplitConfig(seed=0, test_fraction=0.5, mode="auto"))
    assert summary["mode"] == "given"
    assert all(n.startswith("test/") for n in summary["names"]["test"])


@pytest.mark.skipif(not SHARED_LISTS.is_dir(), reason="shared/ Dayton lists are not beside this checkout")
def test_published_dayton_lists_have_the_official_sizes_and_grammar() -> None:
    train = read_name_list(SHARED_LISTS / "train_split.txt")
    test = read_name_list(SHARED_LISTS / "test_split.txt")
    assert (len(train), len(test)) == (55_000, 21_048)
    assert all(DAYTON_NAME.match(n) for n in train + test)
    assert sum(n.startswith("-") for n in train + test) == 1_102
    overlap = {location_key(n) for n in train} & {location_key(n) for n in test}
    assert len(overlap) == 7_720 and re.match(r"^[A-Za-z0-9_-]{22}$", next(iter(overlap)))
