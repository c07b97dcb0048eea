"""Turn an archive or folder in any supported layout into a compact store of A|B pairs.

A is always the conditioning domain (colour mask for label layouts, aerial view for Dayton); the training
``direction`` decides which side is the input. The work is spread over processes; every file is fully
decoded and validated, and a bad file is skipped and listed in the manifest instead of stopping the run.

Label maps are read by :mod:`pix2pix.data.labels` and coloured by the class table of ``cfg.palette``
(``auto``: every id found, coloured from :func:`pix2pix.data.palette.colour_map`). The manifest records the
final ``palette`` (``[R, G, B]`` per id, index = id), ``class_names`` and ``void_ids`` at its top level, so
that mask-based metrics read exactly the colours that were painted.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pix2pix.data.archive import DEFAULT_MAX_TOTAL_BYTES, extract_archive
from pix2pix.atomic import atomic_path, process_is_alive, write_json_atomic
from pix2pix.choices import PANEL_ORDERS, RESIZE_POLICIES
from pix2pix.errors import ConfigError, DataError
from pix2pix.hashing import file_sha256
from pix2pix.data.images import decode_photo, decode_rgb, resize_image, resize_pair
from pix2pix.data.class_record import ClassTally, LabelPlan, class_record, label_plan
from pix2pix.data.labels import LabelMap, decode_label_map, paint_labels
from pix2pix.data.layouts import LABEL_KINDS, LABEL_MAP_LAYOUTS, Layout, PairSource, detect_layout
from pix2pix.data.palette import (
    CAR_PALETTE,
    ClassTable,
    classes_setting,
    nearest_colours,
    palette_setting,
    void_ids_setting,
)
from pix2pix.data.sizes import parse_image_size
from pix2pix.data.store import FORMAT_VERSION, MANIFEST_FILE, PAIRS_FILE, reserve_pairs, truncate_pairs, write_previews
from pix2pix.processes import die_with_parent, usable_cpus

PREVIEW_COUNT = 8
# Chunks of pairs a worker may have submitted ahead of the parent writing their results into the store.
CHUNKS_IN_FLIGHT_PER_WORKER = 4
# Archives are extracted next to the output into .extract-<pid>-<random>: a killed run's folder is found by its pid.
EXTRACT_PREFIX = ".extract-"
# Classes the one-line summary lists before it abbreviates.
SUMMARY_CLASSES = 24


@dataclass(frozen=True)
class PrepareConfig:
    """How raw images become stored pairs.

    ``palette``: ``"auto"``, a palette file (YAML/JSON/CSV) or ``[R, G, B]`` per id. ``classes``: a
    ``classes.txt``/CSV of class names (``None``: the dataset's own, if it ships one). ``void_ids``: ids
    painted black and left out of class statistics (``None``: the layout's, 255 for Cityscapes, else none).
    """

    image_size: tuple[int, int]
    resize_policy: str = "stretch"
    palette: str | tuple[tuple[int, int, int], ...] = "auto"
    min_valid_pairs: int = 1
    panel_order: str = "auto"
    classes: str | None = None
    void_ids: tuple[int, ...] | None = None

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], name: Callable[[str], str]) -> PrepareConfig:
        """Check the settings as a person gives them (params.yaml or CLI options) and build the config.

        ``settings`` has the keys ``image_size`` (int or ``[H, W]``), ``resize_policy``, ``palette``,
        ``classes``, ``void_ids``, ``min_valid_pairs`` and ``panel_order``; ``name(key)`` says how the
        person spells that key (``params.yaml: `data.palette``` or ``--palette``) in a :class:`ConfigError`.
        The stage and the CLI both come through here: one path from settings to pairs.
        """
        for key, allowed in (("resize_policy", RESIZE_POLICIES), ("panel_order", PANEL_ORDERS)):
            if settings[key] not in allowed:
                raise ConfigError(f"{name(key)} is {settings[key]!r}; allowed: {', '.join(allowed)}")
        floor = settings["min_valid_pairs"]
        if isinstance(floor, bool) or not isinstance(floor, int) or floor < 1:
            raise ConfigError(f"{name('min_valid_pairs')} is {floor!r}; it must be an int >= 1")
        return cls(
            image_size=parse_image_size(settings["image_size"]),
            resize_policy=settings["resize_policy"],
            palette=palette_setting(settings["palette"], name("palette")),
            min_valid_pairs=floor,
            panel_order=settings["panel_order"],
            classes=classes_setting(settings["classes"], name("classes")),
            void_ids=void_ids_setting(settings["void_ids"], name("void_ids")),
        )


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
    class_pixels: np.ndarray | None = None
    void_pixels: int = 0
    resized_mask: bool = False
    transparent_mask: bool = False


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


def build_pair(
    root: Path, kind: str, source: PairSource, cfg: PrepareConfig, street_first: bool, plan: LabelPlan
) -> BuiltPair:
    """Read, validate and resize one pair; returns :class:`BuiltPair` with ``pair`` shaped ``(2, H, W, 3)``."""
    hashes: dict[str, str] = {}
    result = BuiltPair(source.name, None, hashes)
    try:
        if kind in LABEL_KINDS:
            photo, stored_hw = decode_photo(_read(root, source.files[0], hashes), source.files[0], cfg.image_size)
            labels = decode_label_map(_read(root, source.files[1], hashes), source.files[1], plan.coding, photo.shape[:2])
            labels.ids = plan.class_ids(labels.ids, source.files[1])
            result.resized_mask = labels.stored_hw != stored_hw
            result.transparent_mask = labels.void is not None
            result.pair = _pair_from_labels(photo, labels, cfg, plan, result)
        elif kind == "seed":
            photo, colour = _halves(decode_rgb(_read(root, source.files[0], hashes), source.files[0]), 2, source.files[0])
            result.pair = _pair_from_labels(photo, _seed_labels(colour, plan.table), cfg, plan, result)
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


def _seed_labels(colour: np.ndarray, table: ClassTable) -> LabelMap:
    """Class ids of a seed-archive colour half: every pixel snapped to the nearest palette colour, however far.

    The seed archive squashed its masks with a resize, so blended edges are expected; their share is
    reported as ``off_palette_fraction``. Under ``auto`` (and no dataset CSV of colours) the palette is the
    car colours the archive uses.
    """
    if table.colours:
        ids, colours = table.decoding_colours()
    else:
        ids, colours = np.arange(len(CAR_PALETTE)), np.asarray(CAR_PALETTE, dtype=np.uint8)
    index, distance = nearest_colours(colour, colours)
    return LabelMap(ids[index].astype(np.uint16), snapped=int(np.count_nonzero(distance)), encoding="colour")


def _pair_from_labels(photo: np.ndarray, labels: LabelMap, cfg: PrepareConfig, plan: LabelPlan, result: BuiltPair) -> np.ndarray:
    """Paint ``labels`` (same size as ``photo``), record its statistics in ``result`` and return the resized pair."""
    colour, result.class_pixels, result.void_pixels = paint_labels(labels, plan.table, plan.void_ids)
    result.off_palette_pixels = labels.snapped
    result.mask_pixels = labels.ids.size
    photo, colour = resize_pair(photo, colour, cfg.image_size, cfg.resize_policy)
    return np.stack([colour, photo])


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


def _build_star(args: tuple[Path, str, PairSource, PrepareConfig, bool, LabelPlan]) -> BuiltPair:
    return build_pair(*args)


def _run_parallel(tasks: list[tuple], workers: int) -> Iterable[BuiltPair]:
    if workers <= 1:
        return map(_build_star, tasks)
    executor = ProcessPoolExecutor(max_workers=workers, initializer=die_with_parent, initargs=(os.getpid(),))
    return _closing_map(executor, tasks, workers)


def _closing_map(executor: ProcessPoolExecutor, tasks: list[tuple], workers: int) -> Iterable[BuiltPair]:
    """Built pairs in task order, with at most :data:`CHUNKS_IN_FLIGHT_PER_WORKER` chunks per worker submitted
    and not yet consumed: memory stays bounded whatever the number of pairs (``executor.map`` would submit all
    76,048 Dayton tasks at once and hold every finished result until the slowest earlier one is done)."""
    chunk = max(1, min(32, len(tasks) // 64))
    window = CHUNKS_IN_FLIGHT_PER_WORKER * workers
    chunks = (tasks[start : start + chunk] for start in range(0, len(tasks), chunk))
    with executor:
        pending: deque = deque()
        for part in chunks:
            pending.append(executor.submit(_build_chunk, part))
            if len(pending) >= window:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()


def _build_chunk(tasks: list[tuple]) -> list[BuiltPair]:
    return [build_pair(*task) for task in tasks]


def remove_dead_extractions(folder: Path) -> None:
    """Delete ``.extract-<pid>-*`` folders of ``prepare`` runs that were killed (their pid no longer runs)."""
    for leftover in folder.glob(f"{EXTRACT_PREFIX}*"):
        pid = leftover.name.removeprefix(EXTRACT_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not process_is_alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


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
    max_archive_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
) -> dict[str, Any]:
    """Build ``out_dir/pairs.npy`` and ``out_dir/manifest.json`` from an archive or a folder.

    ``source`` is a ``.zip`` (extracted safely to a temporary folder first; members totalling more than
    ``max_archive_bytes`` are refused) or a folder in any layout
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
        remove_dead_extractions(out_dir.parent)
        with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f"{EXTRACT_PREFIX}{os.getpid()}-") as scratch:
            root = extract_archive(source, Path(scratch) / "root", max_archive_bytes)
            return _prepare_folder(root, out_dir, cfg, workers, progress, {"source_archive_sha256": archive_sha256})
    return _prepare_folder(source, out_dir, cfg, workers, progress, {})


def _prepare_folder(
    root: Path, out_dir: Path, cfg: PrepareConfig, workers: int | None, progress: Progress | None, extra: dict[str, Any]
) -> dict[str, Any]:
    layout = detect_layout(root)
    if not layout.pairs and layout.withheld:
        raise DataError(f"{root}: all {len(layout.withheld)} pairs left out ({layout.withheld_reason}): add train/ and val/")
    if not layout.pairs:
        raise DataError(f"{root}: recognised as `{layout.kind}` but it holds no complete pair")
    street_first = detect_street_first(layout, cfg.panel_order) if layout.kind == "dayton4" else False
    plan = label_plan(cfg.palette, cfg.classes, cfg.void_ids, layout)
    tasks = [(layout.root, layout.kind, pair, cfg, street_first, plan) for pair in layout.pairs]
    workers = workers or usable_cpus()
    height, width = cfg.image_size
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        store = reserve_pairs(tmp / PAIRS_FILE, (len(tasks), 2, height, width, 3), out_dir)
        names, given, hashes = [], [], {}
        skipped = [{"name": p.name, "files": list(p.files), "reason": layout.withheld_reason} for p in layout.withheld]
        resized, transparent = [], []
        off_palette = mask_pixels = 0
        tally = ClassTally()
        for done, (built, task) in enumerate(zip(_run_parallel(tasks, workers), tasks), start=1):
            hashes.update(built.file_hashes)
            files = task[2].files
            if built.pair is None:
                skipped.append({"name": built.name, "files": list(files), "reason": built.error})
            else:
                store[len(names)] = built.pair
                names.append(built.name)
                given.append(task[2].given_split)
                off_palette += built.off_palette_pixels
                mask_pixels += built.mask_pixels
                tally.add(built.class_pixels, built.void_pixels, files[-1])
                if built.resized_mask:
                    resized.append(files[-1])
                if built.transparent_mask:
                    transparent.append(files[-1])
            if progress:
                progress(done, len(tasks))
        if len(names) < cfg.min_valid_pairs:
            reasons = "; ".join(s["reason"] for s in skipped[:3])
            raise DataError(
                f"{root}: only {len(names)} valid pairs, below the floor data.min_valid_pairs={cfg.min_valid_pairs}"
                + (f" ({len(skipped)} skipped, e.g. {reasons})" if skipped else "")
            )
        is_labels = layout.kind in LABEL_MAP_LAYOUTS
        classes = class_record(tally, plan, str(root)) if is_labels else {
            "palette": None, "class_names": None, "void_ids": [], "classes": None, "void_share": None
        }
        store.flush()
        del store
        # Shrink the preallocated array to the valid pairs without copying through RAM twice.
        if len(names) < len(tasks):
            truncate_pairs(tmp / PAIRS_FILE, len(names))
        write_previews(tmp, min(PREVIEW_COUNT, len(names)))
        notes = [*layout.notes, *(plan.notes if is_labels else ())]
        if resized:
            notes.append(f"{len(resized)} masks differ in size from their photo and were resized nearest (see resized_masks)")
        if transparent:
            notes.append(f"{len(transparent)} masks have transparent pixels, read as void (see transparent_masks)")
        manifest = {
            "format_version": FORMAT_VERSION,
            "layout": layout.kind,
            "source": str(root),
            "source_sha256": tree_hash(hashes),
            "config": {**asdict(cfg), "image_size": list(cfg.image_size)},
            "street_first": street_first if layout.kind == "dayton4" else None,
            "counts": {"pairs": len(names), "skipped": len(skipped), "unmatched": len(layout.unmatched)},
            "off_palette_fraction": (off_palette / mask_pixels) if mask_pixels else None,
            **classes,
            "class_file": cfg.classes or (str(layout.class_file.relative_to(root)) if layout.class_file else None),
            "notes": notes,
            "skipped": skipped,
            "unmatched": layout.unmatched,
            "resized_masks": resized,
            "transparent_masks": transparent,
            "names": names,
            "given_splits": given if any(given) else None,
            **extra,
        }
        write_json_atomic(tmp / MANIFEST_FILE, manifest)
    return manifest


def summary_lines(manifest: dict[str, Any], out_dir: Path) -> list[str]:
    """What ``prepare`` tells a person: layout and counts, one class summary line, notes, the first skips (those a
    note explains, as Cityscapes' withheld test folder, not one by one)."""
    counts = manifest["counts"]
    lines = [
        f"{manifest['layout']} layout: {counts['pairs']} pairs, {counts['skipped']} skipped, "
        f"{counts['unmatched']} unmatched → {out_dir}"
    ]
    if manifest["classes"] is not None:
        shown = [f"{c['id']} {c['name']} {100 * c['pixel_share']:.1f}%" for c in manifest["classes"][:SUMMARY_CLASSES]]
        more = len(manifest["classes"]) - len(shown)
        void = f"; void {manifest['void_ids']} {100 * manifest['void_share']:.1f}%" if manifest["void_share"] else ""
        lines.append(f"{len(manifest['classes'])} classes: {', '.join(shown)}{f', … {more} more' if more > 0 else ''}{void}")
    lines += [f"  note: {note}" for note in manifest["notes"]]
    unexplained = [item for item in manifest["skipped"] if not any(item["reason"] in note for note in manifest["notes"])]
    lines += [f"  skipped {item['name']}: {item['reason']}" for item in unexplained[:10]]
    return lines
