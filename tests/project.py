"""A throwaway copy of this project in its own git repo, for tests that run real DVC commands."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]


def project_files() -> list[str]:
    """Tracked and not-ignored files of the checkout (what a fresh clone would have, plus work in progress)."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO, check=True, capture_output=True,
    ).stdout.decode()
    return [name for name in listing.split("\0") if name and (REPO / name).is_file()]


def set_key(params: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = params
    for part in parents:
        node = node[part]
    node[leaf] = value


def make_project(root: Path, overrides: dict[str, Any]) -> Path:
    """Copy the project into ``root``, apply ``overrides`` (dotted keys) to params.yaml, and commit it."""
    for name in project_files():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    params = yaml.safe_load((root / "params.yaml").read_text())
    for key, value in overrides.items():
        set_key(params, key, value)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q", "-b", "main"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-q", "-m", "project copy"], root)
    return root


def tool_env() -> dict[str, str]:
    """Environment whose ``python`` and ``dvc`` are this interpreter's (the stages run ``python -m ...``)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    env.update({"DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"})
    return env


def run(command: list[str], cwd: Path, timeout_s: float = 900) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in ``cwd``; on failure raise with its output so the test log shows why."""
    result = subprocess.run(command, cwd=cwd, env=tool_env(), capture_output=True, text=True, timeout=timeout_s)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result
