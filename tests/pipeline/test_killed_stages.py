"""A stage killed outright (SIGKILL: the OOM killer, a pre-empted node) in the middle of its work, then `dvc repro`:
it completes, its outputs equal an uninterrupted run's bytes, and nothing is left behind — no `*.tmp-*` folder, no
worker process of the killed stage still alive."""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.project import make_project, run, tool_env

SETTINGS = {
    "image_size": 32, "batch_size": 4, "epochs": 2, "data.sample.n_pairs": 40, "data.min_valid_pairs": 10,
    "model.ngf": 8, "model.ndf": 8, "train.snapshot_every": 1, "train.deterministic": True, "eval.num_images": 6,
    "eval.sample_count": 2, "eval.segmenter.width": 4, "eval.segmenter.epochs": 6, "mlflow.enabled": False,
}
# Outputs that must not depend on whether a stage was killed on the way (paths inside a project).
COMPARED = (
    "data/prepared/pairs.npy", "data/splits/train.npy", "models/segmenter/segmenter.pt",
    "models/snapshots", "models/generator.pt", "metrics/epochs.tsv", "metrics/losses.tsv", "metrics/summary.json",
)
STAGE_TIMEOUT_S = 600


def digests(root: Path) -> dict[str, str]:
    """sha256 of every compared file (folders: each file in them)."""
    files = []
    for name in COMPARED:
        path = root / name
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def stage_process(dvc: psutil.Process, stage: str) -> psutil.Process | None:
    """The process running ``python -m stages.<stage>`` under ``dvc``, if it runs now."""
    for child in dvc.children(recursive=True):
        try:
            if child.cmdline()[-2:] == ["-m", f"stages.{stage}"]:  # the stage itself (not train's live scorer)
                return child
        except psutil.NoSuchProcess:
            continue
    return None


def kill_in_the_middle(root: Path, stage: str, ready: Callable[[psutil.Process], bool]) -> list[psutil.Process]:
    """Run `dvc repro`, SIGKILL the ``stage`` process (only it) once ``ready(process)``; return its children then."""
    dvc = subprocess.Popen(["dvc", "repro"], cwd=root, env=tool_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watcher = psutil.Process(dvc.pid)
    deadline = time.monotonic() + STAGE_TIMEOUT_S
    while True:
        if dvc.poll() is not None:
            pytest.fail(f"dvc repro ended before {stage} reached the middle of its work:\n{dvc.stdout.read()}")
        assert time.monotonic() < deadline, f"{stage} never reached the middle of its work"
        target = stage_process(watcher, stage)
        try:
            if target is not None and ready(target):
                children = target.children(recursive=True)
                target.kill()
                break
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.01)
    output, _ = dvc.communicate(timeout=120)
    assert dvc.returncode != 0, output
    return children


def has_children(process: psutil.Process) -> bool:
    return bool(process.children())


def running_for(seconds: float) -> Callable[[psutil.Process], bool]:
    return lambda process: time.time() - process.create_time() > seconds


@pytest.mark.slow
def test_stages_killed_midway_rerun_to_the_same_bytes_and_leave_nothing_behind(tmp_path: Path) -> None:
    straight = make_project(tmp_path / "straight", SETTINGS)
    # A clone: the same commit, which generator files record.
    run(["git", "clone", "-q", str(straight), str(tmp_path / "killed")], tmp_path)
    root = tmp_path / "killed"
    run(["dvc", "repro"], straight)

    leftovers = {
        # Sample scenes render in worker processes.
        "download": has_children,
        # Its pool is at work once the store is reserved.
        "prepare": lambda process: any(root.glob("data/prepared.tmp-*/pairs.npy")) and has_children(process),
        "segmenter": lambda process: any(root.glob("models/segmenter.tmp-*")),
        # After epoch 1's checkpoint, during epoch 2 or the live scores of epoch 1 (a child process).
        "train": lambda process: any(root.glob("models/checkpoints/*.pt")),
        "evaluate": running_for(2.0),
    }
    orphans: list[psutil.Process] = []
    for stage, ready in leftovers.items():
        orphans += kill_in_the_middle(root, stage, ready)
    gone, alive = psutil.wait_procs(orphans, timeout=20)
    assert not alive, f"processes of killed stages still run: {[p.cmdline() for p in alive]}"
    assert len(gone) >= 3  # the download's and prepare's workers at least

    run(["dvc", "repro"], root)
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*.tmp-*")) == []
    assert list(root.glob("data/.extract-*")) == []
    assert digests(root) == digests(straight)
    assert "Running stage" not in run(["dvc", "repro"], root).stdout
