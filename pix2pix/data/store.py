"""The on-disk format of prepared and split pairs: one uint8 array file plus a JSON manifest.

``pairs.npy`` has shape ``(N, 2, H, W, 3)``, dtype uint8: index 0 along axis 1 is A (the conditioning
domain: colour mask, aerial view), index 1 is B (photo, street view). Training memory-maps it, so a
256 px set of 10,000 pairs (3.9 GB) costs no RAM until read and no per-step image decoding.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pix2pix.errors import DataError

FORMAT_VERSION = 1
PAIRS_FILE = "pairs.npy"
MANIFEST_FILE = "manifest.json"


def open_pairs(path: Path) -> np.ndarray:
    """Memory-map a pairs array file (``.npy``) read-only, checking its shape and dtype."""
    path = Path(path)
    try:
        pairs = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError as error:
        raise DataError(f"{path}: missing; run `dvc repro prepare` (or `pix2pix prepare`) first") from error
    except ValueError as error:
        raise DataError(f"{path}: not a readable pairs array ({error}); rebuild it with `dvc repro -f prepare`") from error
    if pairs.dtype != np.uint8 or pairs.ndim != 5 or pairs.shape[1] != 2 or pairs.shape[4] != 3:
        raise DataError(f"{path}: expected uint8 (N, 2, H, W, 3) pairs, got {pairs.dtype} {pairs.shape}")
    return pairs


def read_manifest(folder: Path) -> dict[str, Any]:
    """Read ``manifest.json`` of a prepared or split folder."""
    path = Path(folder) / MANIFEST_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as error:
        raise DataError(f"{path}: missing; the folder was not written by `pix2pix prepare`") from error
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: corrupt JSON ({error}); rebuild it") from error


def side_by_side(pair: np.ndarray) -> np.ndarray:
    """Join one ``(2, H, W, 3)`` pair into the familiar ``(H, 2W, 3)`` A|B image."""
    return np.concatenate([pair[0], pair[1]], axis=1)
