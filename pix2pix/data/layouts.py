"""Recognise the folder layouts the pipeline accepts and list the pairs each one holds.

Layouts (see shared/datasets.md); photo and label files are matched by their path without the suffix:

- ``cityscapes``: ``leftImg8bit/<split>/<city>/<x>_leftImg8bit.png`` + ``gtFine/<split>/<city>/<x>_gtFine_labelIds.png``
  (``_gtFine_trainIds.png`` when there are no labelIds); void id 255 by default; the split folders are kept, but
  the ``test`` folder's pairs are withheld (:data:`pix2pix.data.cityscapes.WITHHELD_REASON`).
- ``camvid``: SegNet's CamVid, ``train/`` + ``trainannot/``, ``val/`` + ``valannot/``, ``test/`` + ``testannot/``
  (any ``X/`` beside ``Xannot/``); the folders' own split is kept.
- ``kaggle``: ``images/`` + ``masks/`` (class-id label maps), possibly nested, or pre-split (``train/images`` ...).
- ``labels``: the same with ``images/`` or ``img/`` beside ``labels/``, ``ann/`` or ``annotations/``.
- ``seed``: ``car-segmentation/train/<name>.png``, each photo | colour mask side by side (the seed archive).
- ``dayton4``: Dayton prepared panels ``<name>.jpg`` 4 panels wide (street/aerial order detected or given).
- ``dayton2``: Dayton raw ``*streetview.jpg`` + ``*overhead.jpg`` files.
- ``ab``: any other folder of A|B images (``train/``, ``val/``, ``test/`` subfolders are kept as the given split).

A dataset's ``classes.txt`` or class CSV found beside the label folders is reported for class names.
Two files that would make the same pair (``a.png`` and ``a.jpg``) are rejected by name. File names are used
exactly as stored: never URL-decoded, never passed through a shell.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pix2pix.data.cityscapes import LABEL_IDS_SUFFIX, TRAIN_IDS_SUFFIX, WITHHELD_REASON, WITHHELD_SPLIT
from pix2pix.errors import DataError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
DAYTON_NAME = re.compile(r"^[A-Za-z0-9_-]{22}\.x-?\d+\.y-?\d+\.a-?\d+\.(jpg|png)$")
# Folder names that carry a dataset's own split; validation sets are our test split.
GIVEN_SPLITS = {"train": "train", "training": "train", "val": "test", "validation": "test", "test": "test"}
PHOTO_DIRS = ("images", "img")
LABEL_DIRS = ("masks", "labels", "ann", "annotations")
# CSVs first: they carry colours as well as names.
CLASS_FILES = ("class_dict.csv", "classes.csv", "classes.txt", "class_names.txt")
CAMVID_LABEL_SUFFIX = "annot"
CITYSCAPES_PHOTO_SUFFIX = "_leftImg8bit"
CITYSCAPES_LABEL_SUFFIXES = (LABEL_IDS_SUFFIX, TRAIN_IDS_SUFFIX)
CITYSCAPES_VOID_IDS = (255,)
# Kinds whose second file is a label map coloured by prepare (A = colour mask, B = photo).
LABEL_KINDS = frozenset({"kaggle", "labels", "camvid", "cityscapes"})
# Every layout whose stored A side is a colour label map: those plus the seed archive's colour-mask halves.
LABEL_MAP_LAYOUTS = LABEL_KINDS | {"seed"}


@dataclass(frozen=True)
class PairSource:
    """One pair to build: its name and its files (relative to the layout root), in the layout's order."""

    name: str
    files: tuple[str, ...]
    given_split: str | None = None


@dataclass
class Layout:
    """A recognised layout: its kind, the root the file paths are relative to, the pairs and the leftovers.

    ``class_file``: the dataset's own class-name file, if it ships one; ``void_ids``: the void ids the
    layout implies when none are configured (Cityscapes: 255). ``withheld``: complete pairs the layout leaves
    out, for ``withheld_reason`` (Cityscapes' ``test`` folder, whose labels are not real).
    """

    kind: str
    root: Path
    pairs: list[PairSource]
    unmatched: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    class_file: Path | None = None
    void_ids: tuple[int, ...] = ()
    withheld: list[PairSource] = field(default_factory=list)
    withheld_reason: str | None = None


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


def _folders_below(path: Path, root: Path) -> list[Path]:
    """The folders between ``root`` and ``path``, ``root`` excluded: a layout never reaches above its root."""
    return [root / parent for parent in path.relative_to(root).parents if parent != Path(".")]


def _split_of(parts: tuple[str, ...]) -> str | None:
    """The given split named by the first split-named folder among ``parts``."""
    for part in parts:
        if part.lower() in GIVEN_SPLITS:
            return GIVEN_SPLITS[part.lower()]
    return None


def _keyed(files: list[Path], folder: Path, strip: tuple[str, ...] = ()) -> dict[str, Path]:
    """Image files under ``folder`` by their path without suffix (and without one of ``strip``'s name endings).

    Raises :class:`DataError` naming both files when two of them give the same key (``a.png`` and ``a.jpg``).
    With ``strip``, files ending in none of them are not label or photo files of the layout and are left out;
    the first ending in ``strip`` that a key has wins over later ones.
    """
    keyed: dict[str, Path] = {}
    rank: dict[str, int] = {}
    for path in files:
        if not _is_image(path) or folder not in path.parents:
            continue
        key = path.relative_to(folder).with_suffix("").as_posix()
        order = 0
        if strip:
            order = next((i for i, end in enumerate(strip) if key.endswith(end)), -1)
            if order < 0:
                continue
            key = key[: -len(strip[order])]
        if key in keyed and rank[key] == order:
            raise DataError(
                f"{keyed[key]} and {path} would make the same pair `{key}`: remove or rename one of them"
            )
        if key not in keyed or order < rank[key]:
            keyed[key], rank[key] = path, order
    return keyed


def _match(
    photos: dict[str, Path], labels: dict[str, Path], root: Path, prefix: str, split: str | None
) -> tuple[list[PairSource], list[str]]:
    """Pairs of photo and label with the same key (named ``prefix + key``), and the files without a partner."""
    pairs = []
    for key in sorted(photos.keys() & labels.keys()):
        given = split or _split_of(tuple(key.split("/")[:-1]))
        pairs.append(PairSource(prefix + key, (photos[key].relative_to(root).as_posix(), labels[key].relative_to(root).as_posix()), given))
    unmatched = [photos[k].relative_to(root).as_posix() for k in photos.keys() - labels.keys()]
    unmatched += [labels[k].relative_to(root).as_posix() for k in labels.keys() - photos.keys()]
    return pairs, sorted(unmatched)


def _class_file(base: Path, root: Path) -> Path | None:
    """The first known class-name file in ``base`` or a folder above it, up to ``root``."""
    for folder in (base, *base.parents):
        for name in CLASS_FILES:
            if (folder / name).is_file():
                return folder / name
        if folder == root:
            break
    return None


def _layout_with_classes(kind: str, root: Path, pairs: list[PairSource], unmatched: list[str], base: Path) -> Layout:
    notes = []
    class_file = _class_file(base, root)
    if class_file is not None and class_file.suffix == ".txt":
        entries = [line for line in class_file.read_text(errors="replace").splitlines() if line.strip()]
        notes.append(f"{class_file.name} lists {len(entries)} classes")
    return Layout(kind, root, pairs, unmatched, notes, class_file)


def _detect_cityscapes(files: list[Path], root: Path) -> Layout | None:
    photo_dirs = sorted(
        {p for f in files for p in _folders_below(f, root) if p.name == "leftImg8bit" and (p.parent / "gtFine").is_dir()}
    )
    if not photo_dirs:
        return None
    if len(photo_dirs) > 1:
        raise DataError(f"{root}: several Cityscapes trees ({', '.join(str(p) for p in photo_dirs)}): keep one")
    photos = _keyed(files, photo_dirs[0], (CITYSCAPES_PHOTO_SUFFIX,))
    labels = _keyed(files, photo_dirs[0].parent / "gtFine", CITYSCAPES_LABEL_SUFFIXES)
    pairs, unmatched = _match(photos, labels, root, "", None)
    layout = _layout_with_classes("cityscapes", root, pairs, unmatched, photo_dirs[0].parent)
    layout.void_ids = CITYSCAPES_VOID_IDS
    # The official test labels are not real (pix2pix.data.cityscapes): their pairs are withheld, with the reason.
    layout.pairs = [p for p in pairs if p.name.split("/")[0].lower() != WITHHELD_SPLIT]
    layout.withheld = [p for p in pairs if p.name.split("/")[0].lower() == WITHHELD_SPLIT]
    if layout.withheld:
        layout.withheld_reason = WITHHELD_REASON
        layout.notes.append(f"{len(layout.withheld)} pairs of `{WITHHELD_SPLIT}/` left out: {WITHHELD_REASON}")
    return layout


def _detect_camvid(files: list[Path], root: Path) -> Layout | None:
    """``X/`` beside ``Xannot/`` (SegNet's CamVid); each pair is named ``X/<stem>`` and keeps X's split."""
    folders = sorted({f.parent for f in files if _is_image(f)})
    photo_dirs = [d for d in folders if d.with_name(d.name + CAMVID_LABEL_SUFFIX) in folders]
    if not photo_dirs:
        return None
    pairs, unmatched = [], []
    for folder in photo_dirs:
        label_dir = folder.with_name(folder.name + CAMVID_LABEL_SUFFIX)
        found, left = _match(
            _keyed(files, folder), _keyed(files, label_dir), root, f"{folder.relative_to(root).as_posix()}/",
            _split_of((folder.name,)),
        )
        pairs += found
        unmatched += left
    return _layout_with_classes("camvid", root, pairs, sorted(unmatched), photo_dirs[0].parent)


def _label_bases(files: list[Path], root: Path) -> dict[Path, tuple[Path, Path]]:
    """Folders holding a photo folder and a label folder (``images/`` + ``masks/`` ...) with images in both."""
    with_images = {parent for f in files if _is_image(f) for parent in _folders_below(f, root)}
    bases: dict[Path, tuple[Path, Path]] = {}
    for folder in sorted(with_images):
        if folder.name not in PHOTO_DIRS:
            continue
        base = folder.parent
        label_dirs = [base / name for name in LABEL_DIRS if base / name in with_images]
        if len(label_dirs) > 1:
            raise DataError(f"{base}: several label folders ({', '.join(d.name for d in label_dirs)}); keep one")
        if label_dirs:
            if base in bases:
                raise DataError(f"{base}: several photo folders ({bases[base][0].name}, {folder.name}); keep one")
            bases[base] = (folder, label_dirs[0])
    return bases


def _detect_label_folders(files: list[Path], root: Path) -> Layout | None:
    """``images/`` + ``masks/`` and the other photo/label folder pairs, once or once per split folder."""
    bases = _label_bases(files, root)
    if not bases:
        return None
    splits = {base: _split_of(base.relative_to(root).parts) for base in bases}
    if len(bases) > 1 and not all(splits.values()):
        listed = ", ".join(str(b.relative_to(root)) for b in bases)
        raise DataError(
            f"{root}: several image/label folder pairs ({listed}) and not one per train/val/test folder: keep one"
        )
    kind = "kaggle" if all(labels.name == "masks" for _, labels in bases.values()) else "labels"
    pairs, unmatched = [], []
    for base, (photo_dir, label_dir) in bases.items():
        prefix = f"{base.relative_to(root).as_posix()}/" if len(bases) > 1 else ""
        found, left = _match(_keyed(files, photo_dir), _keyed(files, label_dir), root, prefix, splits[base])
        pairs += found
        unmatched += left
    return _layout_with_classes(kind, root, pairs, sorted(unmatched), min(bases, key=lambda b: len(b.parts)))


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


def _single_file_layout(kind: str, images: list[Path], root: Path) -> Layout:
    pairs, seen, duplicates = [], set(), []
    for path in images:
        relative = path.relative_to(root)
        split = _split_of(relative.parts[:-1])
        # Same file name in train/ and test/ is legitimate for A|B sets: keep the split in the pair name.
        name = f"{split}/{path.name}" if kind == "ab" and split else path.name
        if name in seen:
            duplicates.append(str(relative))
            continue
        seen.add(name)
        pairs.append(PairSource(name, (str(relative),), split if kind == "ab" else None))
    notes = [f"{len(duplicates)} duplicate names skipped"] if duplicates else []
    # The real seed archive ships no class file, but a seed-layout archive that does (the sample) is read with it.
    class_file = _class_file(images[0].parent, root) if kind == "seed" and images else None
    return Layout(kind, root, pairs, duplicates, notes, class_file)


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
    for detect in (_detect_cityscapes, _detect_camvid, _detect_label_folders):
        layout = detect(files, root)
        if layout is not None:
            return layout
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
        f"{root}: no known layout (expected images/+masks/ or another photo/label folder pair, X/+Xannot/, leftImg8bit/+gtFine/, "
        f"car-segmentation/train/*.png, Dayton panels or a folder of A|B images); found {describe_folder(files, root)}"
    )
