"""DVC stage `train`: the weights of pix2pix on data/splits, and nothing else.

Writes generator snapshots of the epochs to score (models/snapshots), the last checkpoints (models/checkpoints)
and the per-epoch losses and rates (metrics/losses.tsv, metrics/timings.tsv). It reads only the params that
change the weights (and its own logging/checkpoint settings), so a change of evaluation or tracking never runs
it; when it does run with a finished checkpoint of the same config, data and training code, it trains nothing
(:mod:`pix2pix.training.resume`).

As each snapshot is written, rank 0 asks the `evaluate` stage's code to score it (a child process,
``python -m stages.evaluate --live``) so that scores appear in the log and MLflow while training runs;
the `evaluate` stage after it finds them in its cache. Until the scoring inputs exist (DVC may run this stage
before `reference` or `segmenter`), they are left to the `evaluate` stage.

`python -m stages.train` trains in `train.gpus` processes: with more than one it replaces itself by
`torchrun --standalone --nproc-per-node=N -m stages.train` (one process per GPU, DDP; on a machine without GPUs,
N gloo processes on the CPU), so that DVC runs, and its lock file records, the multi-GPU training. Started by
torchrun itself (several nodes, see README) it trains as the rank it is given; rank 0 writes the files.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from pix2pix.choices import ALL_GPUS
from pix2pix.console import EpochProgress
from pix2pix.data.layouts import LABEL_MAP_LAYOUTS
from pix2pix.data.store import open_pairs, read_manifest
from pix2pix.devices import request_deterministic_cublas
from pix2pix.errors import ConfigError
from pix2pix.params import narrower_than_paper
from pix2pix.provenance import git_state
from pix2pix.processes import die_with_parent
from pix2pix.tables import write_epochs_tsv
from pix2pix.training import distributed
from pix2pix.training.config import train_config_from_params
from pix2pix.training.generator_file import describe_generator
from pix2pix.training.loop import LOSS_COLUMNS, TIMING_COLUMNS, train
from stages.common import run_stage
from stages.paths import (
    INCEPTION_DIR, LOSSES_TSV, MODELS_DIR, PREPARED_DIR, REFERENCE_FILE, SEGMENTER_SCORES, SPLITS_DIR, TIMINGS_TSV,
    TRAIN_PAIRS,
)

USES = ("dataset", "direction", "batch_size", "epochs", "lr", "lambda_l1", "seed", "model", "train")
# Set by torchrun in every process it starts: this process is already one rank of a group.
TORCHRUN_VARIABLE = "TORCHELASTIC_RUN_ID"


def process_count(gpus: int | str, visible_gpus: int) -> int:
    """How many training processes `train.gpus` asks for: ``all`` = every visible GPU (1 without GPUs).

    A number above ``visible_gpus`` is refused on a GPU machine; without GPUs it starts that many CPU processes.
    """
    if gpus == ALL_GPUS:
        return max(visible_gpus, 1)
    if 0 < visible_gpus < gpus:
        raise ConfigError(f"train.gpus is {gpus} but this machine has {visible_gpus} GPUs: lower it or use {ALL_GPUS}")
    return int(gpus)


def launch_command(processes: int) -> list[str]:
    """The torchrun command line that runs this stage in ``processes`` processes on this machine."""
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
        "-m", "stages.train",
    ]


def score_live(epoch: int, snapshot: Path) -> None:
    """Score a fresh snapshot in a child process running the `evaluate` stage's code (rank 0, between epochs)."""
    if not (REFERENCE_FILE.is_file() and INCEPTION_DIR.is_dir() and SEGMENTER_SCORES.is_file()):
        logging.info("epoch %d: snapshot %s (scored by the evaluate stage: its inputs are not built yet)", epoch, snapshot)
        return
    sys.stdout.flush()
    parent = os.getpid()
    result = subprocess.run(
        [sys.executable, "-m", "stages.evaluate", "--live"], check=False,
        preexec_fn=lambda: die_with_parent(parent),  # a killed training takes its scorer with it
    )
    if result.returncode != 0:
        logging.warning("note: live scores of epoch %d failed (exit %d); the evaluate stage scores it", epoch, result.returncode)


def main(params: dict[str, Any]) -> None:
    if TORCHRUN_VARIABLE not in os.environ:
        processes = process_count(params["train"]["gpus"], torch.cuda.device_count())
        if processes > 1:
            # exec, not a child: torchrun receives DVC's signals itself and forwards them to every rank.
            sys.stdout.flush()
            os.execv(sys.executable, launch_command(processes))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    request_deterministic_cublas()  # before any CUDA work, so that deterministic cuBLAS stays possible
    info = distributed.init_from_env()
    train_pairs = open_pairs(TRAIN_PAIRS)
    mask_input = read_manifest(SPLITS_DIR)["layout"] in LABEL_MAP_LAYOUTS  # resized nearest by the jitter
    cfg = train_config_from_params(params, tuple(train_pairs.shape[2:4]), mask_input)
    manifest = read_manifest(PREPARED_DIR)
    commit = git_state(Path.cwd())["git_commit"]
    description = describe_generator(  # palette, classes, input kind, size, provenance: in every generator file
        manifest, params["direction"], cfg.model.image_size, params["dataset"], manifest["source_sha256"],
        None if commit == "unknown" else commit,
    )
    progress = None
    if info.is_main:
        if notice := narrower_than_paper(params):
            logging.warning("note: %s", notice)
        progress = EpochProgress(cfg.total_epochs, params["train"]["log_every_s"])
    try:
        result = train(
            cfg, train_pairs, MODELS_DIR, on_snapshot=score_live if info.is_main else None,
            progress=progress.update if progress else None, device=info.device, description=description,
        )
    finally:
        if progress:
            progress.close()
        distributed.cleanup()
    if info.is_main:
        write_epochs_tsv(LOSSES_TSV, result.history, LOSS_COLUMNS)
        write_epochs_tsv(TIMINGS_TSV, result.history, TIMING_COLUMNS)
        done = "nothing left to train" if result.epochs_run == 0 else f"trained {result.epochs_run} epochs"
        print(
            f"{done} in {info.world_size} process(es) (resumed after epoch {result.resumed_from_epoch}) → "
            f"{result.generator_path}"
        )


if __name__ == "__main__":
    run_stage(USES, main)
