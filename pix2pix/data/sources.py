"""Where each dataset comes from and how it lands in ``data/raw``.

``acquire_dataset`` fetches (or, for ``sample``, generates) the archive into a cache folder that survives
``dvc repro``, verifies it, and extracts it safely into ``raw_dir/source``; Dayton's official split lists
land in ``lists_dir``. Both folders are replaced atomically.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from pix2pix.data import palette, sample, sample_car, sample_scene
from pix2pix.data.archive import DEFAULT_MAX_TOTAL_BYTES, extract_archive, extract_zip
from pix2pix.atomic import atomic_path, write_json_atomic
from pix2pix.data.download import Expected, fetch, verify_file
from pix2pix.errors import ConfigError, DataError
from pix2pix.hashing import file_sha256
from pix2pix.data.split import LIST_FILES

SOURCE_DIR = "source"
WHERE_TO_GET = {
    "dayton": (
        "Dayton is distributed as dayton.zip from the GTCrossView MediaFire folder (no stable direct URL): download it "
        "by hand, then set `data.dayton.source` to the local path or a mirror URL "
        "(e.g. `dvc exp run -S dataset=dayton -S data.dayton.source=/path/to/dayton.zip`)"
    ),
    "folder": (
        "set `data.folder.source` to a folder or .zip of A|B images or of images/+masks/ "
        "(e.g. `dvc exp run -S dataset=folder -S data.folder.source=/path/to/facades`)"
    ),
    "cars": "set `data.cars.source` to the seed URL (default) or a local copy of the Kaggle car-segmentation archive",
}
Progress = Callable[[int, int | None], None]
# The sample is generated at the seed archive's resolution; prepare resizes it to `image_size` like real data.
SAMPLE_SIDE_PX = 256
# The modules whose code renders the sample: their bytes name the cached archive.
SAMPLE_CODE = (sample, sample_scene, sample_car, palette)


def expected_from(settings: Mapping[str, Any], prefix: str = "") -> Expected:
    """Pinned size/hashes from a ``data.<dataset>`` section (missing keys mean: not pinned)."""
    return Expected(
        size=settings.get(f"{prefix}size"),
        sha256=settings.get(f"{prefix}sha256"),
        git_blob_sha1=settings.get(f"{prefix}git_blob_sha1"),
    )


def _local_path(source: str) -> Path | None:
    parsed = urlparse(source)
    if parsed.scheme in ("http", "https"):
        return None
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(source)


def _cache_name(source: str) -> str:
    """``<hash of the source string>-<file name>``: two sources with the same file name never share a cache entry."""
    name = Path(urlparse(source).path).name or "download.zip"
    return f"{hashlib.sha256(source.encode()).hexdigest()[:12]}-{name}"


def copy_folder(source: Path, dest: Path) -> None:
    """Copy a user's folder, refusing symbolic links (they could point anywhere, or loop) like archive members.

    Files are hard-linked where ``dest`` is on the same filesystem (no second copy of a 30 GB folder; prepare only
    reads them), else copied.
    """
    for folder, subfolders, files in os.walk(source):
        for name in subfolders + files:
            if (Path(folder) / name).is_symlink():
                raise DataError(f"{Path(folder) / name}: symbolic links are not accepted in a data folder; copy the real file there")
    shutil.copytree(source, dest, copy_function=_link_or_copy)


def _link_or_copy(source: str, dest: str) -> None:
    try:
        os.link(source, dest)
    except OSError:  # another filesystem, or one without hard links
        shutil.copy2(source, dest)


def _materialise(
    source: str, expected: Expected, cache_dir: Path, dest: Path, progress: Progress | None, manual_hint: str,
    max_archive_bytes: int,
) -> str:
    """Put the content of ``source`` (archive URL/path or folder) into ``dest``; return its sha256 or tree note.

    A local archive is verified (one read: size and hashes) and extracted where it is: it is not copied into the
    cache, whose job is to keep downloads across runs.
    """
    local = _local_path(source)
    if local is not None and local.is_dir():
        copy_folder(local, dest)
        return "folder"
    if local is not None:
        if not local.is_file():
            raise DataError(f"{local}: no such file or folder; {manual_hint}")
        digest = verify_file(local, expected, f"{manual_hint} (the right file), or update the pinned values in params.yaml")
        extract_archive(local, dest, max_archive_bytes)
        return digest
    archive = fetch(source, cache_dir / _cache_name(source), expected, progress=progress, manual_hint=manual_hint)
    extract_archive(archive, dest, max_archive_bytes)
    return file_sha256(archive)


def acquire_dataset(
    dataset: str,
    settings: Mapping[str, Any],
    seed: int,
    raw_dir: Path,
    lists_dir: Path,
    cache_dir: Path,
    progress: Progress | None = None,
    workers: int = 1,
    max_archive_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
) -> dict[str, Any]:
    """Fetch or generate ``dataset`` into ``raw_dir/source`` and its split lists into ``lists_dir``.

    ``settings`` is the ``data.<dataset>`` section of the params; ``workers`` processes render the sample (see
    :func:`~pix2pix.data.sample.write_sample_archive`); an archive whose members total more than
    ``max_archive_bytes`` is refused. Returns what was recorded in ``raw_dir/SOURCE.json``.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(raw_dir) as tmp:
        tmp.mkdir(parents=True)
        if dataset == "sample":
            size = SAMPLE_SIDE_PX
            # The generator's own code is part of the name: a changed renderer never reuses a stale archive.
            code = hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in SAMPLE_CODE)).hexdigest()[:12]
            name = f"sample-{settings['layout']}-{settings['n_pairs']}-{seed}-{size}-{code}.zip"
            archive = cache_dir / name
            # The archive is a pure function of its name's parameters and written atomically: reuse it.
            if not archive.is_file():
                sample.write_sample_archive(
                    archive, n_pairs=int(settings["n_pairs"]), seed=seed, layout=settings["layout"], size_hw=(size, size),
                    workers=workers, progress=progress,
                )
            extract_zip(archive, tmp / SOURCE_DIR)
            source, digest = f"generated:{name}", file_sha256(archive)
        else:
            source = settings.get("source")
            if not source:
                raise ConfigError(f"params.yaml: `data.{dataset}.source` is not set: {WHERE_TO_GET[dataset]}")
            digest = _materialise(
                source, expected_from(settings), cache_dir, tmp / SOURCE_DIR, progress,
                f"download it by hand and set `data.{dataset}.source` to the local path", max_archive_bytes,
            )
        record = {"dataset": dataset, "source": source, "sha256": digest}
        write_json_atomic(tmp / "SOURCE.json", record)
    _write_lists(dataset, settings, lists_dir, cache_dir, progress)
    return record


def _write_lists(dataset: str, settings: Mapping[str, Any], lists_dir: Path, cache_dir: Path, progress: Progress | None) -> None:
    """Fetch Dayton's official split lists (pinned by git blob id); other datasets get an empty record."""
    with atomic_path(lists_dir) as tmp:
        tmp.mkdir(parents=True)
        available = {}
        if dataset == "dayton":
            for split, filename in LIST_FILES.items():
                url = settings.get(f"{split}_list")
                if url:
                    cached = fetch(url, cache_dir / _cache_name(url), expected_from(settings, f"{split}_list_"), progress=progress)
                    shutil.copyfile(cached, tmp / filename)
                    available[split] = filename
        write_json_atomic(tmp / "lists.json", {"dataset": dataset, "lists": available})
