"""Atomic, durable writes: a file or folder either appears complete under its final name or not at all.

Everything is first written next to the target (same filesystem, so ``os.replace`` is atomic) under a
name ending in ``.tmp-<pid>``, flushed to the disk (``fsync`` of the file, or of every file of a folder),
then renamed, and the parent folder is synced so that the rename itself survives a crash of the machine.
On any exception the temporary is removed and the previous content of the target, if any, is left untouched.

A process killed outright (SIGKILL, the node's power) cannot clean up: the next write of the same target
removes the ``.tmp-<pid>``/``.old-<pid>`` siblings left by processes that no longer run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# <name>.tmp-<pid> while being written, <name>.old-<pid> while a folder is being swapped.
LEFTOVER_PATTERN = re.compile(r"^(?P<name>.+)\.(?:tmp|old)-(?P<pid>\d+)$")


def temporary_sibling(path: Path) -> Path:
    """Return the temporary name used while ``path`` is being written."""
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def process_is_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (signal 0 asks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


def remove_leftovers(path: Path) -> list[Path]:
    """Delete the temporaries of ``path`` left by killed writers (their pid no longer runs); return them."""
    return remove_dead_temporaries(Path(path).parent, Path(path).name)


def remove_dead_temporaries(folder: Path, name: str | None = None) -> list[Path]:
    """Delete the ``.tmp-<pid>``/``.old-<pid>`` entries in ``folder`` (of the target ``name`` only, when given)
    whose writer no longer runs; return them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in folder.iterdir():
        match = LEFTOVER_PATTERN.match(entry.name)
        if match and name in (None, match["name"]) and not process_is_alive(int(match["pid"])):
            _remove(entry)
            removed.append(entry)
    return removed


def fsync_path(path: Path) -> None:
    """Flush ``path`` (a file, or a folder's files and the folder itself) to the disk."""
    path = Path(path)
    if path.is_dir():
        for child in path.rglob("*"):
            if child.is_file() and not child.is_symlink():
                _fsync_descriptor(child, os.O_RDONLY)
    _fsync_descriptor(path, os.O_RDONLY)


def _fsync_descriptor(path: Path, flags: int) -> None:
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path to write a file *or* folder to; sync it and rename it onto ``path`` on success.

    An existing folder at ``path`` is replaced as a whole (moved aside, then deleted) so readers never
    see a mix of old and new files.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    tmp = temporary_sibling(path)
    _remove(tmp)
    try:
        yield tmp
        if tmp.exists():
            fsync_path(tmp)
    except BaseException:
        _remove(tmp)
        raise
    if path.is_dir() and not path.is_symlink():
        old = path.with_name(f"{path.name}.old-{os.getpid()}")
        _remove(old)
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)
    fsync_path(path.parent)


def write_bytes_atomic(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: Path | str, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path | str, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON (stable bytes for DVC) atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
