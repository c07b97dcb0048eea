"""A CamVid-style label folder of the user's, end to end through `dvc exp run` as the README shows it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pix2pix.data.palette import colour_map
from tests import builders
from tests.project import make_project, run

TINY = {
    "image_size": 32, "batch_size": 4, "epochs": 1, "data.min_valid_pairs": 5, "model.ngf": 8, "model.ndf": 8,
    "train.snapshot_every": 1, "eval.num_images": 4, "eval.inception": "trunk", "eval.sample_count": 2, "mlflow.enabled": False,
}


@pytest.mark.slow
def test_camvid_folder_runs_end_to_end_with_dvc_exp_run(tmp_path: Path) -> None:
    folder = builders.camvid_folder(tmp_path / "CamVid", {"train": 6, "val": 2, "test": 2})
    root = make_project(tmp_path / "project", TINY)
    run(["dvc", "exp", "run", "-S", "dataset=folder", "-S", f"data.folder.source={folder}"], root)
    manifest = json.loads((root / "data/prepared/manifest.json").read_text())
    assert manifest["layout"] == "camvid" and manifest["counts"]["pairs"] == 10
    assert manifest["palette"] == colour_map(12).tolist() and manifest["void_ids"] == []
    split = json.loads((root / "data/splits/manifest.json").read_text())
    assert split["mode"] == "given" and split["counts"] == {"train": 6, "test": 4}
    summary = json.loads((root / "metrics/summary.json").read_text())
    assert summary["fid"] is not None and summary["fid"] > 0
