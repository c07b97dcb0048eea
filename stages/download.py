"""DVC stage `download`: fetch (or generate, for `sample`) the dataset into data/raw and its split lists into data/lists."""

from __future__ import annotations

from typing import Any

from pix2pix.console import progress_bar
from pix2pix.data.sample import default_workers
from pix2pix.data.sources import acquire_dataset
from stages.common import run_stage
from stages.paths import CACHE_DIR, LISTS_DIR, RAW_DIR

USES = ("dataset", "data.split_seed", "data.sample", "data.cars", "data.dayton", "data.folder", "data.max_archive_bytes")


def main(params: dict[str, Any]) -> None:
    dataset = params["dataset"]
    # The sample is generated, not downloaded: its bar counts scenes, not bytes.
    with progress_bar("generate sample scenes" if dataset == "sample" else f"download {dataset}") as progress:
        record = acquire_dataset(
            dataset, params["data"][dataset], params["data"]["split_seed"], RAW_DIR, LISTS_DIR, CACHE_DIR, progress,
            workers=default_workers(), max_archive_bytes=params["data"]["max_archive_bytes"],
        )
    print(f"{dataset}: {record['source']} (sha256 {record['sha256'][:12]}…) → {RAW_DIR}")


if __name__ == "__main__":
    run_stage(USES, main)
