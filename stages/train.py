"""DVC stage `train`: pix2pix on data/splits, evaluated every `eval.every` epochs, tracked in MLflow.

Single process: `python -m stages.train`. Several GPUs: `torchrun --nproc_per_node=N -m stages.train` (rank 0
evaluates, writes files and talks to MLflow). Resumes automatically from models/checkpoint.pt when the
config and data are unchanged.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from pix2pix import distributed
from pix2pix.config import flatten_keys
from pix2pix.console import EpochProgress
from pix2pix.evaluation import evaluate_generator, load_reference, split_direction
from pix2pix.inception_files import load_network_choice
from pix2pix.model import ModelConfig
from pix2pix.run_record import RunRecord, epoch_row, write_epochs_tsv
from pix2pix.store import open_pairs
from pix2pix.tracking import Tracker, experiment_name, git_state, project_root, tracking_uri
from pix2pix.train import EpochReport, TrainConfig, TrainingInterrupted, config_hash, data_fingerprint, train
from stages.common import run_stage

USES = (
    "dataset", "direction", "batch_size", "epochs", "lr", "lambda_l1", "seed",
    "model", "train", "eval.every", "eval.inference_dropout", "mlflow.enabled",
)
SPLITS_DIR, INCEPTION_DIR, REFERENCE_FILE = Path("data/splits"), Path("data/inception"), Path("data/reference/features.npz")
MODELS_DIR, METRICS_DIR = Path("models"), Path("metrics")
# Datasets whose stored A side is a colour mask: the jitter resizes it nearest-neighbour.
MASK_DATASETS = ("sample", "cars")


def train_config(params: dict[str, Any], image_size: tuple[int, int]) -> TrainConfig:
    """The trainer's config from the stage's params and the size of the stored pairs."""
    model, options = params["model"], params["train"]
    return TrainConfig(
        model=ModelConfig(
            image_size=image_size, ngf=model["ngf"], ndf=model["ndf"], norm=model["norm"],
            n_layers_d=model["n_layers_d"], dropout_placement=model["dropout_placement"],
        ),
        batch_size=params["batch_size"], epochs=params["epochs"], direction=params["direction"],
        epochs_decay=options["epochs_decay"], lr=float(params["lr"]), beta1=float(options["beta1"]),
        lambda_l1=float(params["lambda_l1"]), gan_loss=model["gan_loss"], seed=params["seed"],
        jitter=options["jitter"], flip=options["flip"], mask_input=params["dataset"] in MASK_DATASETS,
        amp=options["amp"], compile=options["compile"], log_every_steps=options["log_every_steps"],
        sample_count=options["sample_count"],
    )


def main(params: dict[str, Any]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    info = distributed.init_from_env()
    train_pairs, test_pairs = open_pairs(SPLITS_DIR / "train.npy"), open_pairs(SPLITS_DIR / "test.npy")
    cfg = train_config(params, tuple(train_pairs.shape[2:4]))
    tracker, evaluator = None, None
    if info.is_main:
        evaluator = EpochEvaluator(params, test_pairs, info.device)
        tracker = start_tracker(params, cfg, train_pairs, info.device)
    progress = EpochProgress(cfg.total_epochs) if info.is_main else None
    try:
        result = train(
            cfg, train_pairs, test_pairs[evaluator.sample_indices] if evaluator else test_pairs, MODELS_DIR,
            on_epoch_end=(lambda report: evaluator.on_epoch_end(report, tracker)) if evaluator else None,
            progress=progress.update if progress else None, device=info.device,
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
        write_epochs_tsv(METRICS_DIR / "epochs.tsv", result.history)
        if result.fresh_start_reason:
            print(f"note: started from scratch: {result.fresh_start_reason}")
        print(f"trained {result.epochs_run} epochs (resumed after epoch {result.resumed_from_epoch}) → {result.generator_path}")


def start_tracker(params: dict[str, Any], cfg: TrainConfig, train_pairs, device) -> Tracker | None:
    """Open the MLflow run: continue the recorded one when this run resumes the same config and data."""
    if not params["mlflow"]["enabled"]:
        return None
    root = project_root()
    record = RunRecord.read(MODELS_DIR / RunRecord.FILE)
    identity = {"config_hash": config_hash(cfg), "data_fingerprint": data_fingerprint(train_pairs)}
    resuming = record is not None and record.identity == identity and (MODELS_DIR / "checkpoint.pt").is_file()
    tracker = Tracker(
        uri=tracking_uri(root), experiment=experiment_name(params["dataset"], params["direction"]),
        backlog=METRICS_DIR / "mlflow_backlog.jsonl", run_id=record.run_id if resuming else None,
    )
    run_name = os.environ.get("DVC_EXP_NAME")
    tags = {"dvc_exp_name": run_name or "", "dataset": params["dataset"], "device": str(device), **git_state(root)}
    tracker.start(run_name, flatten_keys(params), tags)
    RunRecord(run_id=tracker.run_id, identity=identity).write(MODELS_DIR / RunRecord.FILE)
    return tracker


class EpochEvaluator:
    """Per-epoch evaluation on rank 0: state is real (the loaded Inception network and the fixed eval set)."""

    def __init__(self, params: dict[str, Any], test_pairs, device) -> None:
        self.reference = load_reference(REFERENCE_FILE)
        self.extractor = load_network_choice(INCEPTION_DIR, device)
        if not self.extractor.has_classifier:
            from pix2pix.inception import IS_UNAVAILABLE

            logging.warning("WARNING: %s", IS_UNAVAILABLE)
        self.inputs, self.targets = split_direction(test_pairs[self.reference.indices], params["direction"])
        self.sample_indices = self.reference.indices[: params["train"]["sample_count"]]
        self.every, self.total = params["eval"]["every"], params["epochs"] + params["train"]["epochs_decay"]
        self.inference_dropout, self.seed, self.device = params["eval"]["inference_dropout"], params["seed"], device
        self.rows: list[dict[str, Any]] = []

    def on_epoch_end(self, report: EpochReport, tracker: Tracker | None) -> dict[str, Any]:
        metrics = None
        if report.epoch % self.every == 0 or report.epoch == self.total:
            metrics, _ = evaluate_generator(
                report.generator, self.inputs, self.targets, self.extractor, self.reference, self.device,
                inference_dropout=self.inference_dropout, seed=self.seed,
            )
        row = epoch_row(report, metrics)
        self.rows.append(row)
        write_epochs_tsv(METRICS_DIR / "epochs.tsv", self.rows)
        if report.sample_grid:
            grid = METRICS_DIR / "samples" / report.sample_grid.name
            grid.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(report.sample_grid, grid)
        if tracker:
            tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=report.epoch)
            if report.sample_grid:
                tracker.log_image(report.sample_grid, key="samples", step=report.epoch)
        scores = "not evaluated (eval.every)" if metrics is None else f"FID {row['fid']:.2f}, KID {row['kid']:.4f}, SSIM {row['ssim']:.3f}"
        logging.info("epoch %d: %s, %.1f img/s", report.epoch, scores, report.img_per_s)
        return row


if __name__ == "__main__":
    run_stage(USES, main)
