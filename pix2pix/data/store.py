"""The on-disk format of prepared and split pairs: one uint8 array file plus a JSON manifest.

``pairs.npy`` has shape ``(N, 2, H, W, 3)``, dtype uint8: index 0 along axis 1 is A (the conditioning
domain: colour mask, aerial view), index 1 is B (photo, street view). Training memory-maps it, so a
256 px set of 10,000 pairs (3.9 GB) costs no RAM until read and no per-step image decoding.

A split (``train.npy``, ``test.npy``) is a 1-d int64 array of row indices into one such store, named in its
folder's ``manifest.json`` (``store``: the path relative to that folder, ``store_pairs``: its length), so the
pairs are stored once however they are split (Dayton at 256 px: ~30 GB, not ~60 GB). :func:`open_pairs` opens
either kind; a split opens as a :class:`PairsView` that reads only the rows asked for.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from pix2pix.errors import DataError

FORMAT_VERSION = 1
PAIRS_FILE = "pairs.npy"
MANIFEST_FILE = "manifest.json"
# Filesystems report free space a little conservatively; fallocate itself is the final word.
RESERVE_SLACK_BYTES = 1 << 20


class PairsView:
    """The rows ``rows`` (int64 ``(n,)``) of a pairs ``store``, read on demand: a split without a copy of its pairs.

    Indexing (an int, a slice or an index array, optionally followed by more axes) gives what indexing the
    array ``store[rows]`` would, reading only the rows asked for; ``np.asarray(view)`` reads them all.
    """

    def __init__(self, store: np.ndarray, rows: np.ndarray) -> None:
        self.store, self.rows = store, rows

    @property
    def shape(self) -> tuple[int, ...]:
        """``(n, 2, H, W, 3)``."""
        return (len(self.rows), *self.store.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.store.dtype

    @property
    def ndim(self) -> int:
        return self.store.ndim

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: Any) -> np.ndarray:
        first, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        rows = self.rows[first]
        if np.ndim(rows) == 0:
            return self.store[(int(rows), *rest)]
        return self.store[rows][(slice(None), *rest)]

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        return np.asarray(self.store[self.rows], dtype=dtype)


Pairs = np.ndarray | PairsView


def take_pairs(pairs: Pairs, indices: np.ndarray, out: np.ndarray) -> None:
    """Gather ``pairs[indices]`` into ``out`` (uint8 ``(len(indices), 2, H, W, 3)``) straight from the store."""
    store, rows = (pairs.store, pairs.rows[indices]) if isinstance(pairs, PairsView) else (pairs, indices)
    # "clip" avoids numpy's extra copy (the indices are valid).
    np.take(store, rows, axis=0, out=out, mode="clip")


def _load_array(path: Path) -> np.ndarray:
    """Memory-map the ``.npy`` at ``path`` read-only; DataError naming the fix when it is missing or unreadable."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError as error:
        raise DataError(f"{path}: missing; run `dvc repro prepare` (or `pix2pix prepare`) first") from error
    except ValueError as error:
        raise DataError(f"{path}: not a readable pairs array ({error}); rebuild it with `dvc repro -f prepare`") from error


def open_pairs(path: Path) -> Pairs:
    """Open a pairs store (memory-mapped read-only) or a split of one (a :class:`PairsView`), checking shapes."""
    path = Path(path)
    array = _load_array(path)
    if array.ndim == 1 and np.issubdtype(array.dtype, np.integer):
        return _open_split(path, array)
    if array.dtype != np.uint8 or array.ndim != 5 or array.shape[1] != 2 or array.shape[4] != 3:
        raise DataError(f"{path}: expected uint8 (N, 2, H, W, 3) pairs, got {array.dtype} {array.shape}")
    return array


def _open_split(path: Path, rows: np.ndarray) -> PairsView:
    """The view of the store that the manifest next to split file ``path`` names, checked against ``rows``."""
    manifest = read_manifest(path.parent)
    if "store" not in manifest:
        raise DataError(f"{path}: an index list, but {path.parent / MANIFEST_FILE} names no pairs store; rebuild the split")
    store_path = path.parent / manifest["store"]
    store = open_pairs(store_path)
    if not isinstance(store, np.ndarray) or len(store) != manifest["store_pairs"]:
        raise DataError(
            f"{path}: its store {store_path} holds {len(store)} pairs, the split was made from "
            f"{manifest['store_pairs']}: re-run the split (`dvc repro split`)"
        )
    if len(rows) and not 0 <= int(rows.min()) <= int(rows.max()) < len(store):
        raise DataError(f"{path}: row indices outside the {len(store)} pairs of {store_path}; re-run the split")
    return PairsView(store, np.asarray(rows, dtype=np.int64))


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


def reserve_pairs(path: Path, shape: tuple[int, ...], shown_as: Path) -> np.memmap:
    """Create ``path`` as a uint8 ``.npy`` of ``shape`` with every byte of it allocated on the disk, memory-mapped.

    Writing pages of a sparse memory map on a full disk kills the process with SIGBUS and no message;
    allocating the whole file up front (``posix_fallocate``) turns that into one DataError that names the
    folder (``shown_as``), the bytes needed and the bytes free, before any work is done.
    """
    store = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
    _allocate(path, shown_as)
    return store


def _allocate(path: Path, shown_as: Path) -> None:
    """Allocate every byte of the file at ``path``; on a full disk delete it and raise DataError."""
    size = path.stat().st_size
    free = shutil.disk_usage(path.parent).free
    try:
        if size > free + RESERVE_SLACK_BYTES:
            raise OSError(errno.ENOSPC, "not enough space")
        with open(path, "r+b") as handle:
            os.posix_fallocate(handle.fileno(), 0, size)
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        path.unlink(missing_ok=True)
        raise DataError(
            f"{shown_as}: the pairs store needs {size:,} bytes ({size / 2**30:.2f} GiB) but its disk has "
            f"{free:,} free: free space there, or point data/ at a larger disk (a link works)"
        ) from None


def truncate_pairs(path: Path, count: int) -> None:
    """Shrink the ``.npy`` at ``path`` to its first ``count`` pairs in place (a header rewrite and a truncate).

    The pairs stay where they are: the rows kept are the first ones, so only the header's shape changes and
    the file's tail is cut off; nothing is copied (a skipped pair at Dayton scale must not rewrite 30 GB).
    """
    full = np.load(path, mmap_mode="r")
    shape, header_bytes = (count, *full.shape[1:]), full.offset
    del full
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": shape})
    if len(header.getvalue()) != header_bytes:  # npy pads headers to 64 bytes: a shorter shape keeps the size
        raise DataError(f"{path}: cannot shrink its header in place; delete it and run prepare again")
    with open(path, "r+b") as handle:
        handle.write(header.getvalue())
        handle.truncate(header_bytes + int(np.prod(shape)))


def write_previews(folder: Path, count: int) -> None:
    """Save the first ``count`` pairs of ``folder/pairs.npy`` as A|B PNGs under ``preview/`` for a person to look at."""
    from PIL import Image

    pairs = np.load(folder / PAIRS_FILE, mmap_mode="r")
    preview = folder / "preview"
    preview.mkdir()
    for index in range(min(count, len(pairs))):
        Image.fromarray(side_by_side(pairs[index])).save(preview / f"{index:04d}.png")
