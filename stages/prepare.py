"""DVC stage `prepare`: data/raw (any supported layout) → data/prepared/pairs.npy + manifest.json."""

from __future__ import annotations

from typing import Any

from pix2pix.console import progress_bar
from pix2pix.data.prepare import PrepareConfig, prepare_pairs, summary_lines
from stages.common import run_stage
from stages.paths import PREPARED_DIR, RAW_SOURCE

PREPARE_DATA_KEYS = ("resize_policy", "palette", "classes", "void_ids", "min_valid_pairs", "panel_order")
USES = ("image_size", *(f"data.{key}" for key in PREPARE_DATA_KEYS))


def prepare_config(params: dict[str, Any]) -> PrepareConfig:
    """The :class:`PrepareConfig` of the validated ``params`` (through the same check as the CLI's options)."""
    settings = {"image_size": params["image_size"], **{key: params["data"][key] for key in PREPARE_DATA_KEYS}}
    return PrepareConfig.from_settings(settings, lambda key: f"params.yaml: `{'' if key == 'image_size' else 'data.'}{key}`")


def main(params: dict[str, Any]) -> None:
    with progress_bar("prepare pairs") as progress:
        manifest = prepare_pairs(RAW_SOURCE, PREPARED_DIR, prepare_config(params), progress=progress)
    for line in summary_lines(manifest, PREPARED_DIR):
        print(line)


if __name__ == "__main__":
    run_stage(USES, main)
