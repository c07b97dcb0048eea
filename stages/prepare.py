"""DVC stage `prepare`: data/raw (any supported layout) → data/prepared/pairs.npy + manifest.json."""

from __future__ import annotations

from typing import Any

from pix2pix.console import progress_bar
from pix2pix.data.prepare import PrepareConfig, prepare_pairs
from pix2pix.data.sizes import parse_image_size
from stages.common import run_stage
from stages.paths import PREPARED_DIR, RAW_SOURCE

USES = ("image_size", "data.resize_policy", "data.palette", "data.min_valid_pairs", "data.panel_order")


def prepare_config(params: dict[str, Any]) -> PrepareConfig:
    """The :class:`PrepareConfig` of the validated ``params``."""
    data = params["data"]
    return PrepareConfig(
        image_size=parse_image_size(params["image_size"]),
        resize_policy=data["resize_policy"],
        palette=tuple(tuple(int(c) for c in colour) for colour in data["palette"]),
        min_valid_pairs=int(data["min_valid_pairs"]),
        panel_order=data["panel_order"],
    )


def main(params: dict[str, Any]) -> None:
    with progress_bar("prepare pairs") as progress:
        manifest = prepare_pairs(RAW_SOURCE, PREPARED_DIR, prepare_config(params), progress=progress)
    counts = manifest["counts"]
    print(f"{manifest['layout']} layout: {counts['pairs']} pairs, {counts['skipped']} skipped, {counts['unmatched']} unmatched → {PREPARED_DIR}")
    for item in manifest["skipped"][:10]:
        print(f"  skipped {item['name']}: {item['reason']}")


if __name__ == "__main__":
    run_stage(USES, main)
