"""Every supported layout end to end: download (file:// or path) → prepare → split, as the stages chain them."""

from __future__ import annotations

from pathlib import Path

import pytest

from pix2pix.data.prepare import PrepareConfig
from pix2pix.data.split import SplitConfig
from pix2pix.data.palette import CAR_PALETTE
from pix2pix.data.prepare import prepare_pairs
from pix2pix.data.sources import SOURCE_DIR, acquire_dataset
from pix2pix.data.split import read_lists, write_split
from pix2pix.data.store import open_pairs
from tests import builders

LAYOUTS = {
    "kaggle": ("cars", lambda: builders.kaggle_members(5)),
    "kaggle_nested": ("cars", lambda: builders.kaggle_members(5, nested=True)),
    "seed": ("cars", lambda: builders.seed_members(5)),
    "dayton4": ("dayton", lambda: builders.dayton4_members(street_first=False)),
    "dayton2": ("dayton", lambda: builders.dayton2_members()),
}


def dayton_lists(tmp_path: Path) -> dict[str, str]:
    """Official-style lists with junk lines and one name that is not in the data."""
    lists = {}
    for split, names in (("train", builders.DAYTON_NAMES[:3]), ("test", builders.DAYTON_NAMES[3:] + ("-missingABCDEFGHIJKLMN.x1.y1.a1.jpg",))):
        (tmp_path / f"{split}.txt").write_text(".\n..\n" + "\n".join(names) + "\n")
        lists[f"{split}_list"] = (tmp_path / f"{split}.txt").as_uri()
    return lists


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_archive_layout_goes_through_download_prepare_split(tmp_path: Path, layout: str) -> None:
    dataset, members = LAYOUTS[layout]
    archive = builders.write_zip(tmp_path / f"{layout}.zip", members())
    settings = {"source": archive.as_uri(), **(dayton_lists(tmp_path) if dataset == "dayton" else {})}
    acquire_dataset(dataset, settings, 0, tmp_path / "raw", tmp_path / "lists", tmp_path / "cache")
    cfg = PrepareConfig(image_size=(32, 32), resize_policy="stretch", palette=CAR_PALETTE, min_valid_pairs=2)
    manifest = prepare_pairs(tmp_path / "raw" / SOURCE_DIR, tmp_path / "prepared", cfg, workers=1)
    assert manifest["layout"] == layout.replace("_nested", "")
    summary = write_split(tmp_path / "prepared", tmp_path / "splits", SplitConfig(seed=0, test_fraction=0.4), read_lists(tmp_path / "lists"))
    total = manifest["counts"]["pairs"]
    if layout == "dayton4":  # all six names resolve; one listed test name is not in the data
        assert summary["mode"] == "official" and summary["counts"] == {"train": 3, "test": 3}
        assert summary["unresolved"]["test"] == ["-missingABCDEFGHIJKLMN.x1.y1.a1.jpg"]
    elif layout == "dayton2":  # four pairs: three listed for train, one for test, two test names missing
        assert summary["mode"] == "official" and summary["counts"] == {"train": 3, "test": 1}
        assert len(summary["unresolved"]["test"]) == 3 and summary["unlisted"] == []
    else:
        assert summary["mode"] == "random" and total == 5
        assert summary["counts"] == {"train": 3, "test": 2}
    assert open_pairs(tmp_path / "splits" / "train.npy").shape[1:] == (2, 32, 32, 3)


def test_local_folder_source_goes_through_download_prepare_split(tmp_path: Path) -> None:
    folder = builders.ab_folder(tmp_path / "facades")
    acquire_dataset("folder", {"source": str(folder)}, 0, tmp_path / "raw", tmp_path / "lists", tmp_path / "cache")
    cfg = PrepareConfig(image_size=(32, 32), resize_policy="stretch", palette=CAR_PALETTE, min_valid_pairs=2)
    prepare_pairs(tmp_path / "raw" / SOURCE_DIR, tmp_path / "prepared", cfg, workers=1)
    summary = write_split(tmp_path / "prepared", tmp_path / "splits", SplitConfig(seed=0, test_fraction=0.5), read_lists(tmp_path / "lists"))
    assert summary["mode"] == "given" and summary["counts"] == {"train": 3, "test": 3}
