"""`dvc repro split` on the embedded sample in a temporary git repo: real DVC, real stages."""

from __future__ import annotations

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
