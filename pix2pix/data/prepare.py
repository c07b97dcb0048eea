"""Turn an archive or folder in any supported layout into a compact store of A|B pairs.

A is always the conditioning domain (colour mask for cars, aerial view for Dayton); the training
``direction`` decides which side is the input. The work is spread over processes; every file is fully
decoded and validated, and a bad file is skipped and listed in the manifest instead of stopping the run.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pix2pix.data.archive import extract_archive
from pix2pix.atomic import atomic_path, write_json_atomic
from pix2pix.errors import DataError
from pix2pix.hashing import file_sha256
from pix2pix.data.images import decode_index_mask, decode_rgb, resize_image, resize_pair
from pix2pix.data.layouts import Layout, PairSource, detect_layout
from pix2pix.data.palette import build_color_mask, snap_to_palette
from pix2pix.data.store import FORMAT_VERSION, MANIFEST_FILE, PAIRS_FILE, side_by_side

PREVIEW_COUNT = 8


@dataclass(frozen=True)
class PrepareConfig:
    """How raw images become stored pairs."""

    image_size: tuple[int, int]
    resize_policy: str = "stretch"
    palette: tuple[tuple[int, int, int], ...] = ()
    min_valid_pairs: int = 1
    panel_order: str = "auto"


Progress = Callable[[int, int], None]


@dataclass
class BuiltPair:
    """The result of building one pair: arrays (or the reason it failed) and what was read."""

    name: str
    pair: np.ndarray | None
    file_hashes: dict[str, str]
    off_palette_pixels: int = 0
    mask_pixels: int = 0
    error: str | None = None


def _read(root: Path, relative: str, hashes: dict[str, str]) -> bytes:
    data = (root / relative).read_bytes()
    hashes[relative] = hashlib.sha256(data).hexdigest()
    return data


def _halves(image: np.ndarray, count: int, source: str) -> list[np.ndarray]:
    """Cut a side-by-side image into ``count`` equal panels."""
    width = image.shape[1]
    if width % count:
        raise DataError(f"{source}: width {width} is not divisible into {count} equal panels")
    step = width // count
    return [image[:, i * step : (i + 1) * step] for i in range(count)]


def build_pair(root: Path, kind: str, source: PairSource, cfg: PrepareConfig, street_first: bool) -> BuiltPair:
    """Read, validate and resize one pair; returns :class:`BuiltPair` with ``pair`` shaped ``(2, H, W, 3)``."""
    hashes: dict[str, str] = {}
    result = BuiltPair(source.name, None, hashes)
    size, policy = cfg.image_size, cfg.resize_policy
    try:
        if kind == "kaggle":
            photo = decode_rgb(_read(root, source.files[0], hashes), source.files[0])
            index_mask = decode_index_mask(_read(root, source.files[1], hashes), source.files[1])
            colour = build_color_mask(index_mask, cfg.palette, source=source.files[1])
            photo, colour = resize_pair(photo, colour, size, policy)
            result.pair = np.stack([colour, photo])
        elif kind == "seed":
            photo, colour = _halves(decode_rgb(_read(root, source.files[0], hashes), source.files[0]), 2, source.files[0])
            colour, _, result.off_palette_pixels = snap_to_palette(colour, cfg.palette)
            result.mask_pixels = colour.shape[0] * colour.shape[1]
            photo, colour = resize_pair(photo, colour, size, policy)
            result.pair = np.stack([colour, photo])
        elif kind == "dayton2":
            aerial, street = (decode_rgb(_read(root, f, hashes), f) for f in source.files)
            result.pair = np.stack([_resize_photo(aerial, cfg), _resize_photo(street, cfg)])
        else:
            image = decode_rgb(_read(root, source.files[0], hashes), source.files[0])
            panels = _halves(image, 4 if kind == "dayton4" else 2, source.files[0])
            a, b = (panels[1], panels[0]) if kind == "dayton4" and street_first else (panels[0], panels[1])
            result.pair = np.stack([_resize_photo(a, cfg), _resize_photo(b, cfg)])
    except DataError as error:
        result.error = str(error)
    except OSError as error:
        result.error = f"{source.files[0]}: cannot be read ({error})"
    return result


def _resize_photo(photo: np.ndarray, cfg: PrepareConfig) -> np.ndarray:
    return resize_image(photo, cfg.image_size, cfg.resize_policy, Image.Resampling.BICUBIC)


def _vertical_contrast(panel: np.ndarray) -> float:
    """Top-versus-bottom brightness difference: large for street views (sky above road), small for aerials."""
    third = panel.shape[0] // 3
    return abs(float(panel[:third].mean()) - float(panel[-third:].mean()))


def detect_street_first(layout: Layout, panel_order: str, max_images: int = 32) -> bool:
    """Whether Dayton 4-panel images start with the street view ([street | aerial | ...]).

    ``panel_order`` ``street_aerial`` / ``aerial_street`` decides directly; ``auto`` votes over up to
    ``max_images`` images by which of the first two panels has the stronger sky/ground contrast.
    """
    if panel_order != "auto":
        return panel_order == "street_aerial"
    votes = 0
    for source in layout.pairs[:max_images]:
        try:
            image = decode_rgb((layout.root / source.files[0]).read_bytes(), source.files[0])
            first, second = _halves(image, 4, source.files[0])[:2]
        except (DataError, OSError):
            continue
        votes += 1 if _vertical_contrast(first) > _vertical_contrast(second) else -1
    return votes > 0


def _build_star(args: tuple[Path, str, PairSource, PrepareConfig, bool]) -> BuiltPair:
    return build_pair(*args)


def _run_parallel(tasks: list[tuple], workers: int) -> Iterable[BuiltPair]:
    if workers <= 1:
        return map(_build_star, tasks)
    executor = ProcessPoolExecutor(max_workers=workers)
    return _closing_map(executor, tasks)


def _closing_map(executor: ProcessPoolExecutor, tasks: list[tuple]) -> Iterable[BuiltPair]:
    with executor:
        yield from executor.map(_build_star, tasks, chunksize=max(1, min(32, len(tasks) // 64)))


def tree_hash(file_hashes: dict[str, str]) -> str:
    """One sha256 over ``relative path → sha256`` entries: identifies exactly which bytes were used."""
    digest = hashlib.sha256()
    for relative in sorted(file_hashes):
        digest.update(f"{relative}\t{file_hashes[relative]}\n".encode())
    return digest.hexdigest()


def prepare_pairs(
    source: Path,
    out_dir: Path,
    cfg: PrepareConfig,
    *,
    workers: int | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Build ``out_dir/pairs.npy`` and ``out_dir/manifest.json`` from an archive or a folder.

    ``source`` is a ``.zip`` (extracted safely to a temporary folder first) or a folder in any layout
    of :mod:`pix2pix.data.layouts`. ``out_dir`` is replaced atomically, so a failure leaves the previous
    output (or nothing). Raises :class:`DataError` when fewer than ``cfg.min_valid_pairs`` pairs are valid.
    Returns the manifest.
    """
    source, out_dir = Path(source), Path(out_dir)
    if not source.exists():
        raise DataError(f"{source}: no such file or folder")
    if source.is_file():
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        archive_sha256 = file_sha256(source)
        with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".extract-") as scratch:
            root = extract_archive(source, Path(scratch) / "root")
            return _prepare_folder(root, out_dir, cfg, workers, progress, {"source_archive_sha256": archive_sha256})
    return _prepare_folder(source, out_dir, cfg, workers, progress, {})


def _prepare_folder(
    root: Path, out_dir: Path, cfg: PrepareConfig, workers: int | None, progress: Progress | None, extra: dict[str, Any]
) -> dict[str, Any]:
    layout = detect_layout(root)
    if not layout.pairs:
        raise DataError(f"{root}: recognised as `{layout.kind}` but it holds no complete pair")
    street_first = detect_street_first(layout, cfg.panel_order) if layout.kind == "dayton4" else False
    tasks = [(layout.root, layout.kind, pair, cfg, street_first) for pair in layout.pairs]
    workers = workers or os.cpu_count() or 1
    height, width = cfg.image_size
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        store = np.lib.format.open_memmap(tmp / PAIRS_FILE, mode="w+", dtype=np.uint8, shape=(len(tasks), 2, height, width, 3))
        names, given, skipped, hashes = [], [], [], {}
        off_palette = mask_pixels = 0
        for done, (built, task) in enumerate(zip(_run_parallel(tasks, workers), tasks), start=1):
            hashes.update(built.file_hashes)
            if built.pair is None:
                skipped.append({"name": built.name, "files": list(task[2].files), "reason": built.error})
            else:
                store[len(names)] = built.pair
                names.append(built.name)
                given.append(task[2].given_split)
                off_palette += built.off_palette_pixels
                mask_pixels += built.mask_pixels
            if progress:
                progress(done, len(tasks))
        if len(names) < cfg.min_valid_pairs:
            reasons = "; ".join(s["reason"] for s in skipped[:3])
            raise DataError(
                f"{root}: only {len(names)} valid pairs, below the floor data.min_valid_pairs={cfg.min_valid_pairs}"
                + (f" ({len(skipped)} skipped, e.g. {reasons})" if skipped else "")
            )
        store.flush()
        del store
        # Shrink the preallocated array to the valid pairs without copying through RAM twice.
        if skipped:
            _truncate_pairs(tmp / PAIRS_FILE, len(names))
        _write_previews(tmp, names)
        manifest = {
            "format_version": FORMAT_VERSION,
            "layout": layout.kind,
            "source": str(root),
            "source_sha256": tree_hash(hashes),
            "config": {**asdict(cfg), "image_size": list(cfg.image_size)},
            "street_first": street_first if layout.kind == "dayton4" else None,
            "counts": {"pairs": len(names), "skipped": len(skipped), "unmatched": len(layout.unmatched)},
            "off_palette_fraction": (off_palette / mask_pixels) if mask_pixels else None,
            "notes": layout.notes,
            "skipped": skipped,
            "unmatched": layout.unmatched,
            "names": names,
            "given_splits": given if any(given) else None,
            **extra,
        }
        write_json_atomic(tmp / MANIFEST_FILE, manifest)
    return manifest


def _truncate_pairs(path: Path, count: int) -> None:
    full = np.load(path, mmap_mode="r")
    kept_path = path.with_name(path.name + ".kept")
    kept = np.lib.format.open_memmap(kept_path, mode="w+", dtype=np.uint8, shape=(count,) + full.shape[1:])
    kept[:] = full[:count]
    kept.flush()
    del kept, full
    os.replace(kept_path, path)


def _write_previews(folder: Path, names: list[str]) -> None:
    """Save the first few pairs as A|B PNGs under ``preview/`` so a person can look at the store."""
    pairs = np.load(folder / PAIRS_FILE, mmap_mode="r")
    preview = folder / "preview"
    preview.mkdir()
    for index in range(min(PREVIEW_COUNT, len(names))):
        Image.fromarray(side_by_side(pairs[index])).save(preview / f"{index:04d}.png")
