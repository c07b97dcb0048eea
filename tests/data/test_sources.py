"""download stage library: each source kind lands in data/raw; bad sources fail clearly and keep old data."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pix2pix.errors import ArchiveError, ChecksumError, ConfigError, DataError
from pix2pix.hashing import file_sha256
from pix2pix.data.sources import acquire_dataset
from pix2pix.data.split import read_lists
from tests import builders

DAYTON_LIST_SETTINGS = ("train_list", "test_list")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def acquire(tmp_path: Path, dataset: str, settings: dict, seed: int = 0) -> dict:
    return acquire_dataset(dataset, settings, seed, tmp_path / "raw", tmp_path / "lists", tmp_path / "cache")


def test_sample_is_generated_into_raw_and_is_deterministic(tmp_path: Path) -> None:
    first = acquire(tmp_path / "a", "sample", {"n_pairs": 6, "layout": "kaggle"}, seed=5)
    second = acquire(tmp_path / "b", "sample", {"n_pairs": 6, "layout": "kaggle"}, seed=5)
    assert first["sha256"] == second["sha256"]
    assert len(list((tmp_path / "a" / "raw" / "source").rglob("masks/*.png"))) == 6
    assert read_lists(tmp_path / "a" / "lists") is None


def test_cars_from_file_url_with_pinned_hashes(tmp_path: Path) -> None:
    archive = builders.write_zip(tmp_path / "car-segmentation.zip", builders.seed_members(3))
    data = archive.read_bytes()
    settings = {"source": archive.as_uri(), "size": len(data), "git_blob_sha1": git_blob_sha1(data), "sha256": hashlib.sha256(data).hexdigest()}
    record = acquire(tmp_path, "cars", settings)
    assert record["sha256"] == settings["sha256"]
    assert len(list((tmp_path / "raw" / "source" / "car-segmentation" / "train").glob("*.png"))) == 3


def test_checksum_mismatch_fails_and_keeps_previous_raw_data(tmp_path: Path) -> None:
    archive = builders.write_zip(tmp_path / "car-segmentation.zip", builders.seed_members(2))
    acquire(tmp_path, "cars", {"source": str(archive)})
    before = sorted(p.name for p in (tmp_path / "raw" / "source").rglob("*"))
    with pytest.raises(ChecksumError, match="data.cars.source"):
        acquire(tmp_path, "cars", {"source": str(archive), "sha256": "0" * 64, "size": None})
    assert sorted(p.name for p in (tmp_path / "raw" / "source").rglob("*")) == before


def test_dayton_without_source_explains_where_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MediaFire.*data.dayton.source"):
        acquire(tmp_path, "dayton", {"source": None})
    assert not (tmp_path / "raw").exists()


def test_dayton_folder_and_pinned_split_lists(tmp_path: Path) -> None:
    folder = tmp_path / "dayton_folder"
    for name, content in builders.dayton4_members(street_first=True).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    settings = {"source": str(folder)}
    for split, names in (("train", builders.DAYTON_NAMES[:4]), ("test", builders.DAYTON_NAMES[4:])):
        content = (".\n..\n" + "\n".join(names) + "\n").encode()
        (tmp_path / f"{split}.txt").write_bytes(content)
        settings[f"{split}_list"] = (tmp_path / f"{split}.txt").as_uri()
        settings[f"{split}_list_git_blob_sha1"] = git_blob_sha1(content)
    acquire(tmp_path, "dayton", settings)
    lists = read_lists(tmp_path / "lists")
    assert lists == {"train": list(builders.DAYTON_NAMES[:4]), "test": list(builders.DAYTON_NAMES[4:])}
    assert (tmp_path / "raw" / "source" / "dayton" / builders.DAYTON_NAMES[0]).is_file()


def test_dayton_list_with_wrong_blob_id_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    (tmp_path / "train.txt").write_text("a\n")
    settings = {"source": str(folder), "train_list": str(tmp_path / "train.txt"), "train_list_git_blob_sha1": "1" * 40}
    with pytest.raises(ChecksumError):
        acquire(tmp_path, "dayton", settings)
    assert not (tmp_path / "lists").exists()


def test_two_sources_with_the_same_file_name_do_not_share_the_cache(tmp_path: Path) -> None:
    first = builders.write_zip((tmp_path / "a").mkdir() or tmp_path / "a" / "car-segmentation.zip", builders.seed_members(2))
    second = builders.write_zip((tmp_path / "b").mkdir() or tmp_path / "b" / "car-segmentation.zip", builders.seed_members(3))
    acquire(tmp_path, "cars", {"source": first.as_uri()})
    acquire(tmp_path, "cars", {"source": second.as_uri()})
    assert len(list((tmp_path / "raw" / "source" / "car-segmentation" / "train").glob("*.png"))) == 3


def test_folder_with_a_symbolic_link_is_refused(tmp_path: Path) -> None:
    folder = builders.ab_folder(tmp_path / "facades")
    (folder / "train" / "link.jpg").symlink_to("/etc/hostname")
    with pytest.raises(DataError, match="link.jpg: symbolic links are not accepted"):
        acquire(tmp_path, "folder", {"source": str(folder)})
    assert not (tmp_path / "raw").exists()


def test_local_archive_is_extracted_in_place_not_copied_into_the_cache(tmp_path: Path) -> None:
    archive = builders.write_zip(tmp_path / "car-segmentation.zip", builders.seed_members(2))
    record = acquire(tmp_path, "cars", {"source": str(archive)})
    assert record["sha256"] == file_sha256(archive)
    assert list((tmp_path / "cache").iterdir()) == []
    assert len(list((tmp_path / "raw" / "source" / "car-segmentation" / "train").glob("*.png"))) == 2


def test_local_folder_files_are_hard_links_not_copies(tmp_path: Path) -> None:
    folder = builders.ab_folder(tmp_path / "facades")
    acquire(tmp_path, "folder", {"source": str(folder)})
    original = next((folder / "train").glob("*.jpg"))
    placed = tmp_path / "raw" / "source" / "train" / original.name
    assert placed.stat().st_ino == original.stat().st_ino  # same filesystem here: no second copy


def test_archive_over_the_size_cap_names_the_param_that_raises_it(tmp_path: Path) -> None:
    archive = builders.write_zip(tmp_path / "car-segmentation.zip", builders.seed_members(3))
    unpacked = sum(len(content) for content in builders.seed_members(3).values())
    with pytest.raises(ArchiveError, match="raise `data.max_archive_bytes` in params.yaml"):
        acquire_dataset("cars", {"source": str(archive)}, 0, tmp_path / "raw", tmp_path / "lists", tmp_path / "cache",
                        max_archive_bytes=unpacked - 1)
    assert not (tmp_path / "raw").exists()
    acquire_dataset("cars", {"source": str(archive)}, 0, tmp_path / "raw", tmp_path / "lists", tmp_path / "cache",
                    max_archive_bytes=unpacked)
    assert len(list((tmp_path / "raw" / "source" / "car-segmentation" / "train").glob("*.png"))) == 3
