"""DVC stage `train`: pix2pix on data/splits, evaluated every `eval.every` epochs, tracked in MLflow.

`python -m stages.train` trains in `train.gpus` processes: with more than one it replaces itself by
`torchrun --standalone --nproc-per-node=N -m stages.train` (one process per GPU, DDP; on a machine without GPUs,
N gloo processes on the CPU), so that DVC runs, and its lock file records, the multi-GPU training. Started by
torchrun itself (several nodes, see README) it trains as the rank it is given. Rank 0 evaluates, writes files
and talks to MLflow.

Resume: an unfinished models/checkpoint.pt of the same config and data is continued (after Ctrl-C, SIGTERM, a
crash, or `-S epochs=<more>`). A checkpoint that cannot continue, or that already holds every epoch asked for
(DVC re-runs this stage only when a dependency changed), is discarded with a message. The MLflow run is
continued only for the same DVC experiment; a new experiment gets its own run, seeded with the epochs it resumes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pix2pix.training import distributed
from pix2pix.atomic import atomic_path
from pix2pix.training.checkpoint import load_checkpoint
from pix2pix.keys import flatten_keys
from pix2pix.console import EpochProgress
from pix2pix.choices import ALL_GPUS
from pix2pix.data.layouts import LABEL_MAP_LAYOUTS
from pix2pix.devices import request_deterministic_cublas
from pix2pix.errors import ConfigError
from pix2pix.evaluation.image_metrics import IS_SPLITS
from pix2pix.evaluation.scoring import Reference, evaluate_generator, load_reference
from pix2pix.params import narrower_than_paper
from pix2pix.training.model import ModelConfig
from pix2pix.tracking.run_record import (
    EPOCH_COLUMNS, NOTHING_LOGGED, TIMING_COLUMNS, RunRecord, epoch_row, write_epochs_tsv,
)
from pix2pix.data.store import open_pairs, read_manifest
from pix2pix.tracking.tracker import Tracker, experiment_name, git_state, project_root, tracking_uri
from pix2pix.training.loop import EpochReport, TrainConfig, TrainingInterrupted, data_fingerprint, resume_mismatch, train
from stages.common import run_stage
from stages.eval_setup import EVAL_KEYS, eval_setup, inference_mode
from stages.paths import (
    CHECKPOINT, EPOCHS_TSV, MLFLOW_BACKLOG, MODELS_DIR, REFERENCE_FILE, RUN_RECORD, SAMPLES_DIR, SPLITS_DIR, TEST_PAIRS,
    TIMINGS_TSV, TRAIN_PAIRS,
)

USES = (
    "dataset", "batch_size", "epochs", "lr", "lambda_l1", "seed",
    "model", "train", "eval.every", "eval.at_start", "mlflow.enabled", *EVAL_KEYS,
)
# Set by torchrun in every process it starts: this process is already one rank of a group.
TORCHRUN_VARIABLE = "TORCHELASTIC_RUN_ID"


def train_config(params: dict[str, Any], image_size: tuple[int, int], mask_input: bool) -> TrainConfig:
    """The trainer's config from the stage's params and the stored pairs (their size, whether A is a mask)."""
    model, options = params["model"], params["train"]
    return TrainConfig(
        model=ModelConfig(
            image_size=image_size, ngf=model["ngf"], ndf=model["ndf"], norm=model["norm"],
            n_layers_d=model["n_layers_d"], dropout_placement=model["dropout_placement"],
            upsample=model["upsample"],
        ),
        batch_size=params["batch_size"], epochs=params["epochs"], direction=params["direction"],
        epochs_decay=options["epochs_decay"], lr=float(params["lr"]), beta1=float(options["beta1"]),
        lambda_l1=float(params["lambda_l1"]), gan_loss=model["gan_loss"], seed=params["seed"],
        jitter=options["jitter"], flip=options["flip"], mask_input=mask_input,
        amp=options["amp"], compile=options["compile"], log_every_steps=options["log_every_steps"],
        sample_count=options["sample_count"], inference=inference_mode(params),
    )


def checkpoint_to_continue(cfg: TrainConfig, train_pairs: np.ndarray) -> dict[str, Any] | None:
    """The checkpoint this run continues, or None; a checkpoint that must not be continued is deleted (rank 0)."""
    checkpoint = load_checkpoint(CHECKPOINT, "cpu")
    if checkpoint is None:
        return None
    reason = resume_mismatch(checkpoint, cfg, data_fingerprint(train_pairs))
    if reason is None and checkpoint["epoch"] >= cfg.total_epochs:
        reason = f"it already holds all {cfg.total_epochs} epochs (a dependency changed, so DVC asked for a new run)"
    if reason is None:
        return checkpoint
    discarded = CHECKPOINT.with_name(CHECKPOINT.name + ".discarded")
    logging.info("note: %s is not continued because %s; training from scratch (old one kept as %s)", CHECKPOINT, reason, discarded)
    CHECKPOINT.replace(discarded)
    return None


def check_inception_score_images(reference: Reference) -> None:
    """Raise ConfigError when the Inception Score is on but the eval set is smaller than IS needs.

    Every rank checks at start-up: failing on rank 0 after the first epoch would leave the others waiting in
    a collective until the timeout.
    """
    if reference.network_kind == "full" and len(reference.indices) < IS_SPLITS:
        raise ConfigError(
            f"{REFERENCE_FILE}: the Inception Score needs at least {IS_SPLITS} evaluation images, the eval set has "
            f"{len(reference.indices)}: raise eval.num_images to {IS_SPLITS} or more (0 = all test pairs) or add test pairs"
        )


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


def main(params: dict[str, Any]) -> None:
    if TORCHRUN_VARIABLE not in os.environ:
        processes = process_count(params["train"]["gpus"], torch.cuda.device_count())
        if processes > 1:
            # exec, not a child: torchrun receives DVC's signals itself and forwards them to every rank.
            sys.stdout.flush()
            os.execv(sys.executable, launch_command(processes))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # Before any CUDA work (rank 0 loads Inception first), so that deterministic cuBLAS stays possible.
    request_deterministic_cublas()
    check_inception_score_images(load_reference(REFERENCE_FILE))
    info = distributed.init_from_env()
    train_pairs, test_pairs = open_pairs(TRAIN_PAIRS), open_pairs(TEST_PAIRS)
    # A stored colour-mask A side is resized nearest-neighbour by the jitter.
    mask_input = read_manifest(SPLITS_DIR)["layout"] in LABEL_MAP_LAYOUTS
    cfg = train_config(params, tuple(train_pairs.shape[2:4]), mask_input)
    tracker, evaluator, progress = None, None, None
    if info.is_main:
        if notice := narrower_than_paper(params):
            logging.warning("note: %s", notice)
        checkpoint = checkpoint_to_continue(cfg, train_pairs)
        history = list(checkpoint["history"]) if checkpoint else []
        del checkpoint  # hundreds of MB of weights and optimizer state: train() loads its own copy
        evaluator = EpochEvaluator(params, test_pairs, info.device, history)
        run_params = {**flatten_keys(params), "image_size": "x".join(map(str, cfg.model.image_size))}
        tracker, record = start_tracker(params, run_params, history, info.device)
        if tracker:
            tracker.set_tags(evaluator.setup.notes)
        evaluator.record = record
        progress = EpochProgress(cfg.total_epochs)
    distributed.barrier()  # other ranks must not read a checkpoint that rank 0 is about to discard
    try:
        result = train(
            cfg, train_pairs, test_pairs[evaluator.sample_indices] if evaluator else test_pairs, MODELS_DIR,
            on_epoch_end=(lambda report: evaluator.on_epoch_end(report, tracker)) if evaluator else None,
            progress=progress.update if progress else None, device=info.device,
            evaluate_untrained=params["eval"]["at_start"],
        )
    except BaseException as error:
        if tracker:
            tracker.finish("KILLED" if isinstance(error, (TrainingInterrupted, KeyboardInterrupt)) else "FAILED")
        raise
    finally:
        if progress:
            progress.close()
        distributed.cleanup()
    if info.is_main:
        write_tables(result.history)
        if tracker:
            tracker.finish()  # `evaluate` re-opens it to attach the model and the summary
        print(
            f"trained {result.epochs_run} epochs in {info.world_size} process(es) (resumed after epoch "
            f"{result.resumed_from_epoch}) → {result.generator_path}"
        )


def start_tracker(
    params: dict[str, Any], run_params: dict[str, Any], history: list[dict[str, Any]], device
) -> tuple[Tracker | None, RunRecord]:
    """Open the MLflow run and record it in models/run.json (run_id null when tracking is off).

    The recorded run is continued only when this run resumes its checkpoint for the same DVC experiment with
    the same params (MLflow params are immutable); otherwise a new run starts, seeded with the resumed epochs.
    """
    exp_name = os.environ.get("DVC_EXP_NAME", "")
    params_hash = hashlib.sha256(json.dumps(run_params, sort_keys=True, default=str).encode()).hexdigest()
    record = RunRecord.read(RUN_RECORD)
    tracker = None
    if params["mlflow"]["enabled"]:
        root = project_root()
        same_run = (
            bool(history) and record is not None and bool(record.run_id)
            and record.exp_name == exp_name and record.params_hash == params_hash
        )
        tracker = Tracker(
            uri=tracking_uri(root), experiment=experiment_name(params["dataset"], params["direction"]),
            backlog=MLFLOW_BACKLOG, run_id=record.run_id if same_run else None,
        )
        tags = {"dvc_exp_name": exp_name, "dataset": params["dataset"], "device": str(device), **git_state(root)}
        if history and not same_run and record is not None and record.run_id:
            tags["resumed_from_run"] = record.run_id
        tracker.start(exp_name or None, run_params, tags)
        if not same_run:  # a new run that continues earlier epochs gets their curves too
            for row in history:
                tracker.log_metrics({k: row.get(k) for k in EPOCH_COLUMNS + TIMING_COLUMNS if k != "epoch"}, step=row["epoch"])
    logged = record.logged_epoch if tracker and same_run else max((row["epoch"] for row in history), default=NOTHING_LOGGED)
    new_record = RunRecord(tracker.run_id if tracker else None, exp_name, params_hash, logged)
    new_record.write(RUN_RECORD)
    return tracker, new_record


class EpochEvaluator:
    """Per-epoch evaluation on rank 0: state is real (the loaded Inception network and the fixed eval set)."""

    def __init__(self, params: dict[str, Any], test_pairs: np.ndarray, device, history: list[dict[str, Any]]) -> None:
        self.setup = eval_setup(params, test_pairs, device)
        for note in self.setup.notes.values():
            logging.info("note: %s", note)
        self.sample_indices = self.setup.reference.indices[: params["train"]["sample_count"]]
        self.every, self.total = params["eval"]["every"], params["epochs"] + params["train"]["epochs_decay"]
        self.device = device
        self.rows = [{k: row.get(k) for k in EPOCH_COLUMNS + TIMING_COLUMNS} for row in history]
        self.record = RunRecord(run_id=None, exp_name="")  # replaced by start_tracker's record
        restore_sample_grids([row["epoch"] for row in history])

    def on_epoch_end(self, report: EpochReport, tracker: Tracker | None) -> dict[str, Any]:
        metrics = None
        if report.epoch % self.every == 0 or report.epoch == self.total:
            setup = self.setup
            metrics, _ = evaluate_generator(
                report.generator, setup.inputs, setup.targets, setup.extractor, setup.reference, self.device,
                setup.mode, setup.seed, setup.mask_scorer,
            )
        row = epoch_row(report, metrics)
        self.rows.append(row)
        write_tables(self.rows)
        if report.sample_grid:
            copy_atomic(report.sample_grid, SAMPLES_DIR / report.sample_grid.name)
        # A kill between this logging and the checkpoint write makes the epoch run again (with the same
        # numbers, as epochs are reseeded): the record keeps it from reaching MLflow twice.
        if tracker and report.epoch > self.record.logged_epoch:
            tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=report.epoch)
            if report.sample_grid:
                tracker.log_image(report.sample_grid, key="samples", step=report.epoch)
            self.record.logged_epoch = report.epoch
            self.record.write(RUN_RECORD)
        scores = "not evaluated (eval.every)" if metrics is None else f"FID {row['fid']:.2f}, KID {row['kid']:.4f}, SSIM {row['ssim']:.3f}"
        if metrics is not None and row["mask_miou"] is not None:
            scores += f", mask pixel acc {row['mask_pixel_acc']:.3f}, mIoU {row['mask_miou']:.3f}"
        if report.epoch == 0:
            logging.info("epoch 0 (untrained generator): %s", scores)
        else:
            logging.info("epoch %d: %s, %.1f img/s", report.epoch, scores, report.img_per_s)
        return row


def write_tables(rows: list[dict[str, Any]]) -> None:
    """metrics/epochs.tsv (numbers that repeat from run to run) and metrics/timings.tsv (wall-clock times)."""
    write_epochs_tsv(EPOCHS_TSV, rows)
    write_epochs_tsv(TIMINGS_TSV, rows, TIMING_COLUMNS)


def copy_atomic(source: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def restore_sample_grids(epochs: list[int]) -> None:
    """DVC clears metrics/samples before the stage runs: bring back the grids of the epochs being resumed."""
    for epoch in epochs:
        grid = MODELS_DIR / "samples" / f"epoch_{epoch:03d}.png"
        if grid.is_file():
            copy_atomic(grid, SAMPLES_DIR / grid.name)


if __name__ == "__main__":
    run_stage(USES, main)
