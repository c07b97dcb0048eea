"""Recognise the folder layouts the pipeline accepts and list the pairs each one holds.

Layouts (see shared/datasets.md):

- ``kaggle``: ``images/<name>.*`` + ``masks/<name>.png`` (class indices), possibly nested twice.
- ``seed``: ``car-segmentation/train/<name>.png``, each photo | colour mask side by side (the seed archive).
- ``dayton4``: Dayton prepared panels ``<name>.jpg`` 4 panels wide (street/aerial order detected or given).
- ``dayton2``: Dayton raw ``*streetview.jpg`` + ``*overhead.jpg`` files.
- ``ab``: any other folder of A|B images (``train/``, ``val/``, ``test/`` subfolders are kept as the given split).

File names are used exactly as stored: never URL-decoded, never passed through a shell.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pix2pix.errors import DataError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
DAYTON_NAME = re.compile(r"^[A-Za-z0-9_-]{22}\.x-?\d+\.y-?\d+\.a-?\d+\.(jpg|png)$")
GIVEN_SPLITS = {"train": "train", "val": "test", "test": "test"}


@dataclass(frozen=True)
class PairSource:
    """One pair to build: its name and its files (relative to the layout root), in the layout's order."""

    name: str
    files: tuple[str, ...]
    given_split: str | None = None


@dataclass
class Layout:
    """A recognised layout: its kind, the root the file paths are relative to, the pairs and the leftovers."""

    kind: str
    root: Path
    pairs: list[PairSource]
    unmatched: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _visible_files(root: Path) -> list[Path]:
    """All regular files under ``root`` except hidden ones and macOS resource forks, sorted."""
    files = []
    for path in root.rglob("*"):
        parts = path.relative_to(root).parts
        if any(part.startswith(".") or part == "__MACOSX" for part in parts):
            continue
        if path.is_file() and not path.is_symlink():
            files.append(path)
    return sorted(files)


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _kaggle_root(files: list[Path], root: Path) -> Path | None:
    """The folder holding ``images/`` and ``masks/`` with images in them (deepest wins for doubled nesting)."""
    candidates = {f.parent.parent for f in files if f.parent.name == "images" and _is_image(f)}
    with_masks = [c for c in candidates if (c / "masks").is_dir()]
    return max(with_masks, key=lambda p: len(p.parts)) if with_masks else None


def _detect_kaggle(base: Path, root: Path) -> Layout:
    images = {p.stem: p for p in sorted((base / "images").iterdir()) if p.is_file() and _is_image(p)}
    masks = {p.stem: p for p in sorted((base / "masks").iterdir()) if p.is_file() and _is_image(p)}
    pairs = [
        PairSource(stem, (str(images[stem].relative_to(root)), str(masks[stem].relative_to(root))))
        for stem in sorted(images.keys() & masks.keys())
    ]
    unmatched = sorted(
        [str(images[s].relative_to(root)) for s in images.keys() - masks.keys()]
        + [str(masks[s].relative_to(root)) for s in masks.keys() - images.keys()]
    )
    notes = []
    classes = base / "classes.txt"
    if classes.is_file():
        entries = [line for line in classes.read_text(errors="replace").splitlines() if line.strip()]
        notes.append(f"classes.txt lists {len(entries)} classes")
    return Layout("kaggle", root, pairs, unmatched, notes)


def _detect_dayton2(files: list[Path], root: Path) -> Layout:
    street = {f.name[: -len("streetview.jpg")]: f for f in files if f.name.endswith("streetview.jpg")}
    aerial = {f.name[: -len("overhead.jpg")]: f for f in files if f.name.endswith("overhead.jpg")}
    pairs = []
    for prefix in sorted(street.keys() & aerial.keys()):
        name = prefix.rstrip("._-") + ".jpg"
        pairs.append(PairSource(name, (str(aerial[prefix].relative_to(root)), str(street[prefix].relative_to(root)))))
    unmatched = sorted(
        [str(street[p].relative_to(root)) for p in street.keys() - aerial.keys()]
        + [str(aerial[p].relative_to(root)) for p in aerial.keys() - street.keys()]
    )
    return Layout("dayton2", root, pairs, unmatched)


def _given_split(relative: Path) -> str | None:
    for part in relative.parts[:-1]:
        if part.lower() in GIVEN_SPLITS:
            return GIVEN_SPLITS[part.lower()]
    return None


def _single_file_layout(kind: str, images: list[Path], root: Path) -> Layout:
    pairs, seen, duplicates = [], set(), []
    for path in images:
        relative = path.relative_to(root)
        split = _given_split(relative)
        # Same file name in train/ and test/ is legitimate for A|B sets: keep the split in the pair name.
        name = f"{split}/{path.name}" if kind == "ab" and split else path.name
        if name in seen:
            duplicates.append(str(relative))
            continue
        seen.add(name)
        pairs.append(PairSource(name, (str(relative),), split if kind == "ab" else None))
    notes = [f"{len(duplicates)} duplicate names skipped"] if duplicates else []
    return Layout(kind, root, pairs, duplicates, notes)


def describe_folder(files: list[Path], root: Path) -> str:
    """A short inventory of a folder for error messages: file counts by suffix and the top-level entries."""
    suffixes = Counter(f.suffix.lower() or "(none)" for f in files)
    top = sorted({f.relative_to(root).parts[0] for f in files})[:8]
    return f"{len(files)} files ({dict(suffixes.most_common(6))}); top-level entries: {top}"


def detect_layout(root: Path) -> Layout:
    """Recognise the layout of the extracted folder ``root`` and list its pairs.

    Raises :class:`DataError` that names what was found when no known layout matches.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; give an archive (.zip) or a folder of images")
    files = _visible_files(root)
    kaggle = _kaggle_root(files, root)
    if kaggle is not None:
        return _detect_kaggle(kaggle, root)
    if any(f.name.endswith("streetview.jpg") for f in files) and any(f.name.endswith("overhead.jpg") for f in files):
        return _detect_dayton2(files, root)
    images = [f for f in files if _is_image(f)]
    dayton = [f for f in images if DAYTON_NAME.match(f.name)]
    if dayton and len(dayton) >= len(images) // 2:
        return _single_file_layout("dayton4", dayton, root)
    seed = [f for f in images if f.parent.name == "train" and f.parent.parent.name == "car-segmentation"]
    if seed:
        return _single_file_layout("seed", seed, root)
    if images:
        return _single_file_layout("ab", images, root)
    raise DataError(
        f"{root}: no known layout (expected images/+masks/, car-segmentation/train/*.png, Dayton panels or "
        f"a folder of A|B images); found {describe_folder(files, root)}"
    )
