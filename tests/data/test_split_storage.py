"""Splits are row indices into the one pairs store: the pairs are on disk once, and a split reads as the pairs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pix2pix.data.split import SplitConfig, write_split
from pix2pix.data.store import MANIFEST_FILE, PAIRS_FILE, PairsView, open_pairs
from pix2pix.errors import DataError
from tests.data.test_split import prepared  # noqa: F401  (fixture)

CONFIG = SplitConfig(seed=3, test_fraction=0.3, mode="random")


def test_split_files_hold_indices_not_pairs(prepared: Path, tmp_path: Path) -> None:  # noqa: F811
    summary = write_split(prepared, tmp_path / "splits", CONFIG)
    store = open_pairs(prepared / PAIRS_FILE)
    split_bytes = sum((tmp_path / "splits" / f"{split}.npy").stat().st_size for split in ("train", "test"))
    assert split_bytes < store.nbytes / 50
    names = json.loads((prepared / MANIFEST_FILE).read_text())["names"]
    for split in ("train", "test"):
        view = open_pairs(tmp_path / "splits" / f"{split}.npy")
        assert isinstance(view, PairsView) and view.shape == (summary["counts"][split], *store.shape[1:])
        expected = store[[names.index(name) for name in summary["names"][split]]]
        np.testing.assert_array_equal(np.asarray(view), expected)


@pytest.mark.parametrize("key", [0, -1, slice(1, 3), np.array([2, 0]), (slice(None), 1), (np.array([1, 2]), 0, 5)])
def test_view_indexes_like_the_array_of_its_rows(key: object) -> None:
    store = np.random.default_rng(0).integers(0, 256, (9, 2, 6, 6, 3), dtype=np.uint8)
    rows = np.array([7, 2, 5, 0])
    np.testing.assert_array_equal(PairsView(store, rows)[key], store[rows][key])


def test_split_follows_its_store_when_both_folders_move_together(prepared: Path, tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "data").mkdir()
    shutil.move(prepared, tmp_path / "data" / "prepared")
    write_split(tmp_path / "data" / "prepared", tmp_path / "data" / "splits", CONFIG)
    shutil.move(tmp_path / "data", tmp_path / "moved")
    assert len(open_pairs(tmp_path / "moved" / "splits" / "test.npy")) == 3


def test_split_of_a_rebuilt_store_names_the_fix(prepared: Path, tmp_path: Path) -> None:  # noqa: F811
    write_split(prepared, tmp_path / "splits", CONFIG)
    store = np.load(prepared / PAIRS_FILE)
    np.save(prepared / PAIRS_FILE, store[:4])
    with pytest.raises(DataError, match=r"holds 4 pairs, the split was made from 10: re-run the split"):
        open_pairs(tmp_path / "splits" / "train.npy")
