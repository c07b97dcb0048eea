"""The embedded ``sample`` dataset: generated street scenes packed like the real car-segmentation archives.

It lets the whole pipeline (prepare → train → FID) run offline on a CPU in minutes. Each scene
(:mod:`pix2pix.data.sample_scene`) labels every pixel — sky, road, pavement, grass, buildings, trees and the parts
of toy cars (:mod:`pix2pix.data.sample_car`) — so the photo is learnable from its mask up to texture and car colour.

:func:`write_sample_archive` packs the scenes into a zip in the seed archive's layout or the Kaggle layout (see
``datasets.md``), so the sample goes through exactly the same prepare code as the real data. Its classes travel
with it: ``car-segmentation/classes.csv`` (``id,name,r,g,b``, one row per class of
:data:`~pix2pix.data.sample_scene.SCENE_CLASSES`) in both layouts, plus the Kaggle set's ``classes.txt``.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import zipfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from pix2pix.atomic import atomic_path
from pix2pix.choices import SAMPLE_LAYOUTS
from pix2pix.data.download import Progress
from pix2pix.data.palette import build_color_mask
from pix2pix.data.sample_scene import MIN_SIDE_PX, SCENE_CLASSES, SCENE_PALETTE, load_textures, render_street_scene
from pix2pix.errors import ConfigError, DataError
from pix2pix.processes import die_with_parent, usable_cpus

ARCHIVE_ROOT = "car-segmentation"
CLASSES_CSV = "classes.csv"
# The Kaggle archive's photos come in many landscape sizes; the sample cycles through a few of them.
KAGGLE_PHOTO_SIZES_HW: tuple[tuple[int, int], ...] = ((240, 320), (300, 400), (256, 256), (288, 512))
# Pairs 0 and 1 of a Kaggle-layout sample store their photo as RGBA (the real archive has some).
KAGGLE_RGBA_PAIRS = 2
# Each spawned worker costs ~0.5 s to start (imports, textures); the default sample (500 scenes, ~20 s of work)
# gains little beyond this many, and a many-core node should not start one per core.
MAX_DEFAULT_WORKERS = 8

# Zip members get a fixed timestamp (the zip epoch) and permissions so equal inputs give equal bytes.
_ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
_ZIP_UNIX = 3
_FILE_ATTR = 0o100644 << 16
_DIR_ATTR = (0o040755 << 16) | 0x10


def write_sample_archive(
    out_zip: Path | str,
    *,
    n_pairs: int = 240,
    seed: int = 0,
    layout: str = "seed",
    size_hw: tuple[int, int] = (256, 256),
    workers: int = 1,
    progress: Progress | None = None,
) -> Path:
    """Write ``n_pairs`` generated street scenes as a zip in the seed or the Kaggle layout; return its path.

    ``layout="seed"``: ``car-segmentation/train/sample_0000.png`` …, each an RGB PNG of width ``2 * W``
    and height ``H`` (``size_hw = (H, W)``): photo on the left, colour mask (:data:`SCENE_PALETTE`) on the right.
    ``layout="kaggle"``: ``car-segmentation/images/<name>.png`` (RGB photos, sizes cycling through
    :data:`KAGGLE_PHOTO_SIZES_HW` regardless of ``size_hw``; the first two are RGBA with opaque alpha),
    ``car-segmentation/masks/<name>.png`` (the published format: RGBA with R = G = B = class id and A = 255, same
    size) and ``car-segmentation/classes.txt`` (class names, one a line). Both layouts carry ``classes.csv``.
    The output is a pure function of the arguments (byte-identical zips for equal arguments, whatever ``workers``),
    written atomically. With ``workers`` > 1 scenes render in up to that many spawned processes (so the calling
    script must guard its top level with ``if __name__ == "__main__"``, as multiprocessing requires), each scene
    from its own seeded stream (:func:`scene_rng`), so the split of the work does not change a byte.
    ``progress(done, n_pairs)`` is called as scenes finish.
    """
    if layout not in SAMPLE_LAYOUTS:
        raise ConfigError(f"unknown sample layout {layout!r}: use one of {', '.join(SAMPLE_LAYOUTS)}")
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, int) or n_pairs < 1:
        raise ConfigError(f"the sample needs n_pairs >= 1, got {n_pairs!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"the sample seed must be an int >= 0, got {seed!r}")
    if not (
        isinstance(size_hw, Sequence)
        and len(size_hw) == 2
        and all(isinstance(side, int) and side >= MIN_SIDE_PX for side in size_hw)
    ):
        raise ConfigError(f"the sample size_hw must be (H, W) with both sides >= {MIN_SIDE_PX}, got {size_hw!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"the sample needs workers >= 1, got {workers!r}")
    # All members are rendered first (~30 MB for 240 pairs) so they can be written in sorted order.
    files = {f"{ARCHIVE_ROOT}/{CLASSES_CSV}": classes_csv().encode("ascii")}
    if layout == "seed":
        render = partial(_seed_members, seed=seed, size_hw=(size_hw[0], size_hw[1]))
    else:
        files[f"{ARCHIVE_ROOT}/classes.txt"] = ("\n".join(SCENE_CLASSES) + "\n").encode("ascii")
        render = partial(_kaggle_members, seed=seed)
    for done, members in enumerate(_render_all(render, n_pairs, workers), start=1):
        files.update(members)
        if progress is not None:
            progress(done, n_pairs)
    out_zip = Path(out_zip)
    with atomic_path(out_zip) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        for name in sorted(set(files) | _parent_folders(files)):
            _write_member(archive, name, files.get(name))
    return out_zip


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """The generator for scene ``index`` of the sample with ``seed`` (scenes are independent streams)."""
    return np.random.default_rng([seed, index])


def classes_csv() -> str:
    """The sample's classes as CSV text: a header ``id,name,r,g,b`` and one row per class id."""
    rows = ["id,name,r,g,b"] + [
        f"{class_id},{name},{r},{g},{b}"
        for class_id, (name, (r, g, b)) in enumerate(zip(SCENE_CLASSES, SCENE_PALETTE, strict=True))
    ]
    return "\n".join(rows) + "\n"


def default_workers() -> int:
    """Processes to render the sample with: the CPUs this process may run on, at most :data:`MAX_DEFAULT_WORKERS`."""
    return max(1, min(usable_cpus(), MAX_DEFAULT_WORKERS))


def _render_all(
    render: Callable[[int], list[tuple[str, bytes]]], n_pairs: int, workers: int
) -> Iterator[list[tuple[str, bytes]]]:
    """Yield ``render(index)`` for every pair index, in index order, computed in up to ``workers`` processes.

    Spawned rather than forked workers: the caller may hold threads (torch, a test runner) that fork would copy
    mid-flight. A worker costs about 0.5 s to start (imports, textures) against ~40 ms per 256² scene.
    """
    workers = min(workers, n_pairs)
    if workers == 1:
        yield from map(render, range(n_pairs))
        return
    try:
        with ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"), initializer=die_with_parent, initargs=(os.getpid(),)
        ) as pool:
            yield from pool.map(render, range(n_pairs), chunksize=max(1, min(16, n_pairs // (4 * workers))))
    except BrokenProcessPool as error:
        raise DataError(
            f"a process rendering the sample died ({error}); if this runs from your own script, guard its top level "
            "with `if __name__ == \"__main__\":` (spawned workers import it), or pass workers=1"
        ) from error


def _seed_members(index: int, seed: int, size_hw: tuple[int, int]) -> list[tuple[str, bytes]]:
    """``(member name, PNG bytes)`` of pair ``index`` in the seed layout: photo | colour mask side by side."""
    photo, mask = render_street_scene(scene_rng(seed, index), size_hw, load_textures())
    pair = np.concatenate([photo, build_color_mask(mask, SCENE_PALETTE)], axis=1)
    return [(f"{ARCHIVE_ROOT}/train/{_pair_name(index)}", _png_bytes(pair))]


def _kaggle_members(index: int, seed: int) -> list[tuple[str, bytes]]:
    """``(member name, PNG bytes)`` of pair ``index`` in the Kaggle layout: its photo and its mask as published.

    Photo sizes cycle through :data:`KAGGLE_PHOTO_SIZES_HW`, a small stand-in for the real set's mix. Masks are
    RGBA with R = G = B = class id and A = 255, as the published Kaggle masks are (datasets.md).
    """
    photo_size = KAGGLE_PHOTO_SIZES_HW[index % len(KAGGLE_PHOTO_SIZES_HW)]
    photo, mask = render_street_scene(scene_rng(seed, index), photo_size, load_textures())
    if index < KAGGLE_RGBA_PAIRS:
        photo = np.dstack([photo, np.full(photo.shape[:2], 255, dtype=np.uint8)])
    grey_coded = np.dstack([mask, mask, mask, np.full(mask.shape, 255, dtype=np.uint8)])
    return [(f"{ARCHIVE_ROOT}/images/{_pair_name(index)}", _png_bytes(photo)),
            (f"{ARCHIVE_ROOT}/masks/{_pair_name(index)}", _png_bytes(grey_coded))]


def _pair_name(index: int) -> str:
    """Member file name of pair ``index`` (the same in every layout)."""
    return f"sample_{index:04d}.png"


def _png_bytes(image: np.ndarray) -> bytes:
    """Encode a uint8 ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` array as PNG (no timestamps: stable bytes)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _parent_folders(names: dict[str, bytes]) -> set[str]:
    """Folder entries (``a/``, ``a/b/``) for every member, as zip tools write them."""
    return {name[: i + 1] for name in names for i, char in enumerate(name) if char == "/"}


def _write_member(archive: zipfile.ZipFile, name: str, data: bytes | None) -> None:
    """Add a file (``data``) or a folder (``data is None``) with fixed metadata.

    PNGs are stored (already deflated, like ``zip -n .png``); text is deflated.
    """
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE_TIME)
    info.create_system = _ZIP_UNIX
    if data is None:
        info.external_attr = _DIR_ATTR
        archive.writestr(info, b"")
        return
    info.external_attr = _FILE_ATTR
    info.compress_type = zipfile.ZIP_STORED if name.endswith(".png") else zipfile.ZIP_DEFLATED
    archive.writestr(info, data)
