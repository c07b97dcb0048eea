"""DVC stage `split`: data/prepared → data/splits/{train,test}.npy + manifest.json (deterministic)."""

from __future__ import annotations

from typing import Any

from pix2pix.data.split import SplitConfig, read_lists, write_split
from stages.common import run_stage
from stages.paths import LISTS_DIR, PREPARED_DIR, SPLITS_DIR

USES = ("data.split_seed", "data.test_fraction", "data.split_mode")


def split_config(params: dict[str, Any]) -> SplitConfig:
    """The :class:`SplitConfig` of the validated ``params``."""
    data = params["data"]
    return SplitConfig(seed=int(data["split_seed"]), test_fraction=float(data["test_fraction"]), mode=data["split_mode"])


def main(params: dict[str, Any]) -> None:
    summary = write_split(PREPARED_DIR, SPLITS_DIR, split_config(params), read_lists(LISTS_DIR))
    counts = summary["counts"]
    print(f"{summary['mode']} split: {counts['train']} train, {counts['test']} test → {SPLITS_DIR}")
    for split, missing in summary["unresolved"].items():
        if missing:
            print(f"  {len(missing)} names of the official {split} list are not in the data, e.g. {missing[:3]}")
    if summary["unlisted"]:
        print(f"  {len(summary['unlisted'])} prepared pairs are in neither list and were left out")


if __name__ == "__main__":
    run_stage(USES, main)
