"""Where a result came from: the git commit of the code that made it (for generator files and MLflow run tags)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git_state(root: Path) -> dict[str, str]:
    """``git_commit`` (HEAD's id) and ``git_dirty`` ("True" when tracked files have uncommitted changes) of the
    repository at ``root``; both ``"unknown"`` outside a git repository or without git."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()

    try:
        return {"git_commit": git("rev-parse", "HEAD"), "git_dirty": str(bool(git("status", "--porcelain", "-uno")))}
    except (OSError, subprocess.CalledProcessError):
        return {"git_commit": "unknown", "git_dirty": "unknown"}
