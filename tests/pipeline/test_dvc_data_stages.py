"""`dvc repro split` on the embedded sample in a temporary git repo: real DVC, real stages."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from pix2pix.data.store import open_pairs
from tests.project import make_project, run


@pytest.mark.slow
def test_dvc_repro_split_on_the_sample_then_noop(tmp_path: Path) -> None:
    root = make_project(tmp_path / "project", {"image_size": 32, "data.sample.n_pairs": 24, "data.min_valid_pairs": 10})
    run(["dvc", "repro", "split"], root)
    summary = json.loads((root / "data/splits/manifest.json").read_text())
    assert summary["counts"] == {"train": 19, "test": 5}
    assert open_pairs(root / "data/splits/train.npy").shape == (19, 2, 32, 32, 3)
    again = run(["dvc", "repro", "split"], root)
    assert "didn't change" in again.stdout or "up to date" in again.stdout
    assert "Running stage" not in again.stdout


def bytes_on_disk(root: Path, folders: tuple[str, ...]) -> int:
    """Disk blocks of the files under ``folders`` and of their DVC cache objects, each file (inode) counted once.

    A linked cache (hardlink, symlink) shares the workspace file's inode; a copied one does not.
    """
    seen, total = set(), 0
    for folder in folders:
        for path in sorted((root / folder).rglob("*")):
            if not path.is_file():
                continue
            digest = hashlib.md5(path.read_bytes()).hexdigest()
            cached = root / ".dvc" / "cache" / "files" / "md5" / digest[:2] / digest[2:]
            for candidate in (path, cached):
                if candidate.is_file():
                    status = candidate.stat()  # follows a symlink to its cache object
                    if (status.st_dev, status.st_ino) not in seen:
                        seen.add((status.st_dev, status.st_ino))
                        total += status.st_blocks * 512
    return total


@pytest.mark.slow
def test_prepared_pairs_and_splits_are_on_disk_about_once(tmp_path: Path) -> None:
    root = make_project(tmp_path / "project", {"image_size": 64, "data.sample.n_pairs": 60, "data.min_valid_pairs": 10})
    run(["dvc", "repro", "split"], root)
    store_bytes = (root / "data/prepared/pairs.npy").stat().st_size
    ratio = bytes_on_disk(root, ("data/prepared", "data/splits")) / store_bytes
    print(f"workspace + DVC cache of data/prepared and data/splits: {ratio:.3f} x the pairs store ({store_bytes} bytes)")
    # Once, plus the manifests, the previews and the index lists (a few KiB at this toy size).
    assert ratio < 1.3
