"""`prepare` on a disk too small for its pairs store: one line naming the folder and the bytes, nothing half-written.

The disk is real: a 1 MiB tmpfs mounted over the project's data/ folder (needs root, as CI and `make test` as root
have; elsewhere the test is skipped with that reason). Before the store was allocated up front, writing into its
sparse memory map on a full disk killed the stage with SIGBUS and printed nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests import builders
from tests.project import REPO, set_key


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A project folder whose data/ is a 1 MiB tmpfs."""
    data = tmp_path / "project" / "data"
    data.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(data)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield tmp_path / "project"
    finally:
        subprocess.run(["umount", "-l", str(data)], check=False)


def test_prepare_on_a_disk_too_small_for_the_store_fails_in_one_line(small_disk: Path) -> None:
    root = small_disk
    archive = builders.write_zip(root / "seed.zip", builders.seed_members(20, size=32))
    with zipfile.ZipFile(archive) as members:
        members.extractall(root / "data" / "raw" / "source")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    set_key(params, "image_size", 256)  # 20 pairs: a 7.9 MB store on a 1 MiB disk
    set_key(params, "data.min_valid_pairs", 5)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "stages.prepare"], cwd=root, env=env, capture_output=True, text=True)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "data/prepared: the pairs store needs 7,864,448 bytes" in errors[0] and "free" in errors[0]
    assert sorted(path.name for path in (root / "data").iterdir()) == ["raw"]
