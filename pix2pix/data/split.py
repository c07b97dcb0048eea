"""Deterministic train/test split of prepared pairs.

Modes: ``random`` (seeded permutation of the sorted names), ``official`` (Dayton's published
55,000 / 21,048 name lists), ``location`` (Dayton, seeded, but a panorama never appears on both sides),
``given`` (the dataset's own ``train/`` and ``test/`` folders). ``auto`` picks official for Dayton when its
lists are present, the given split when the folder had one, else random. Same inputs → byte-identical outputs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pix2pix.atomic import atomic_path, write_json_atomic
from pix2pix.errors import DataError
from pix2pix.data.store import FORMAT_VERSION, MANIFEST_FILE, PAIRS_FILE, open_pairs, read_manifest

SPLITS = ("train", "test")
LIST_FILES = {"train": "train.txt", "test": "test.txt"}


@dataclass(frozen=True)
class SplitConfig:
    """How prepared pairs are divided into train and test."""

    seed: int
    test_fraction: float
    mode: str = "auto"


@dataclass
class SplitPlan:
    """Which prepared indices go to each split, and what could not be placed."""

    mode: str
    indices: dict[str, list[int]]
    unresolved: dict[str, list[str]] = field(default_factory=dict)
    unlisted: list[str] = field(default_factory=list)


def read_name_list(path: Path) -> list[str]:
    """Read a split list: one file name per line; blank, ``.`` and ``..`` lines (junk in the published lists) dropped."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as error:
        raise DataError(f"{path}: cannot read the split list ({error})") from error
    return [line.strip() for line in lines if line.strip() not in ("", ".", "..")]


def random_plan(names: list[str], seed: int, test_fraction: float) -> SplitPlan:
    """Seeded split that depends only on the set of names, not on their order on disk."""
    order = sorted(range(len(names)), key=lambda i: names[i])
    permutation = np.random.default_rng(seed).permutation(len(order))
    n_test = max(1, round(len(names) * test_fraction)) if test_fraction > 0 and len(names) > 1 else 0
    shuffled = [order[i] for i in permutation]
    return SplitPlan("random", {"train": sorted(shuffled[n_test:]), "test": sorted(shuffled[:n_test])})


def location_key(name: str) -> str:
    """Dayton panorama id: the 22-character prefix before ``.x…``; views of one panorama share it."""
    return name.split(".", 1)[0]


def location_plan(names: list[str], seed: int, test_fraction: float) -> SplitPlan:
    """Seeded split over panoramas: no location appears in both train and test."""
    groups = sorted({location_key(n) for n in names})
    group_plan = random_plan(groups, seed, test_fraction)
    test_groups = {groups[i] for i in group_plan.indices["test"]}
    indices = {"train": [], "test": []}
    for i, name in enumerate(names):
        indices["test" if location_key(name) in test_groups else "train"].append(i)
    return SplitPlan("location", indices)


def official_plan(names: list[str], lists: dict[str, list[str]]) -> SplitPlan:
    """Place pairs by the published name lists; report listed names that are missing and pairs in no list."""
    position = {name: i for i, name in enumerate(names)}
    indices, unresolved, placed = {}, {}, set()
    for split in SPLITS:
        listed = lists[split]
        indices[split] = [position[n] for n in listed if n in position]
        unresolved[split] = [n for n in listed if n not in position]
        placed.update(n for n in listed if n in position)
    unlisted = [n for n in names if n not in placed]
    return SplitPlan("official", indices, unresolved, unlisted)


def given_plan(given: list[str | None]) -> SplitPlan:
    """Keep the dataset's own train/test folders; pairs outside both go to train."""
    indices = {"train": [], "test": []}
    for i, split in enumerate(given):
        indices["test" if split == "test" else "train"].append(i)
    return SplitPlan("given", indices)


def plan_split(manifest: dict[str, Any], cfg: SplitConfig, lists: dict[str, list[str]] | None) -> SplitPlan:
    """Choose the split plan for a prepared store from its manifest and the config."""
    names = manifest["names"]
    mode = cfg.mode
    if mode == "auto":
        mode = "official" if lists else ("given" if manifest.get("given_splits") else "random")
    if mode == "official":
        if not lists:
            raise DataError("split mode `official` needs the Dayton split lists; run `dvc repro download` or set data.split_mode")
        return official_plan(names, lists)
    if mode == "location":
        return location_plan(names, cfg.seed, cfg.test_fraction)
    if mode == "given":
        return given_plan(manifest["given_splits"])
    return random_plan(names, cfg.seed, cfg.test_fraction)


def write_split(prepared_dir: Path, out_dir: Path, cfg: SplitConfig, lists: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Write ``out_dir/{train,test}.npy`` (row indices into the prepared store) and ``out_dir/manifest.json``, atomically.

    The pairs are not copied: the manifest names the store by its path relative to ``out_dir``, so the two
    folders keep their relative places (see :mod:`pix2pix.data.store`).

    Raises :class:`DataError` when the train split ends up empty.
    """
    manifest = read_manifest(prepared_dir)
    pairs = open_pairs(Path(prepared_dir) / PAIRS_FILE)
    names = manifest["names"]
    if len(names) != len(pairs):
        raise DataError(f"{prepared_dir}: manifest lists {len(names)} names but pairs.npy holds {len(pairs)}; rebuild it")
    plan = plan_split(manifest, cfg, lists)
    if not plan.indices["train"]:
        raise DataError(f"{prepared_dir}: the `{plan.mode}` split leaves no training pairs ({len(names)} prepared)")
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        for split in SPLITS:
            np.save(tmp / f"{split}.npy", np.asarray(plan.indices[split], dtype=np.int64))
        summary = {
            "format_version": FORMAT_VERSION,
            "store": os.path.relpath(Path(prepared_dir).resolve() / PAIRS_FILE, Path(out_dir).resolve()),
            "store_pairs": len(pairs),
            "mode": plan.mode,
            "seed": cfg.seed,
            "test_fraction": cfg.test_fraction,
            "image_size": manifest["config"]["image_size"],
            "layout": manifest["layout"],
            # The classes of the masks in A, for the stages that read only the split (mask metrics): see prepare.
            **{key: manifest.get(key) for key in ("palette", "class_names", "void_ids")},
            "counts": {split: len(plan.indices[split]) for split in SPLITS},
            "names": {split: [names[i] for i in plan.indices[split]] for split in SPLITS},
            "unresolved": {split: names_ for split, names_ in plan.unresolved.items()},
            "unlisted": plan.unlisted,
        }
        write_json_atomic(tmp / MANIFEST_FILE, summary)
    return summary


def read_lists(lists_dir: Path) -> dict[str, list[str]] | None:
    """The split lists written by :func:`acquire_dataset`, or ``None`` when the dataset has none."""
    record = json.loads((Path(lists_dir) / "lists.json").read_text())
    if set(record["lists"]) != set(LIST_FILES):
        return None
    return {split: read_name_list(Path(lists_dir) / filename) for split, filename in record["lists"].items()}
