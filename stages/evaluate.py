"""DVC stage `evaluate`: score every generator snapshot of `train`, and make the run's tables, summary and model.

For each snapshot (models/snapshots), FID/KID/IS/L1/PSNR/SSIM and mask consistency under the ``eval`` settings,
cached in models/scores by the snapshot's and the settings' hashes (:mod:`pix2pix.evaluation.run_scores`): a change
of evaluation re-scores the saved epochs and trains nothing; more epochs score only the new snapshots. Writes
metrics/epochs.tsv (one row per scored epoch), metrics/samples/, metrics/summary.json (numbers only: the last
epoch's scores, the best FID, the segmenter's ceiling), metrics/notes.json, the FID curve and models/generator.pt
(the last snapshot with the test-time mode it was scored with), and sends the epochs to MLflow.

``python -m stages.evaluate --live`` scores the snapshots written so far into the cache and MLflow, and writes
nothing else: what `train` runs as each snapshot appears, so that scores show while it trains (in epoch order:
an MLflow run opened then gets the earlier epochs first).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from pix2pix.atomic import write_json_atomic
from pix2pix.data.store import open_pairs
from pix2pix.devices import pick_device
from pix2pix.errors import DataError
from pix2pix.evaluation.run_scores import (
    SnapshotScore, check_one_run, copy_sample_grids, read_snapshot_meta, score_snapshot, settings_key,
)
from pix2pix.evaluation.scoring import METRIC_NAMES
from pix2pix.evaluation.segmentation import MASK_METRIC_NAMES, REAL_METRIC_NAMES
from pix2pix.evaluation.setup import EvalFiles, EvalSetup, eval_setup, read_segmenter_scores
from pix2pix.evaluation.summary import plot_metric_curve, summarise, write_summary
from pix2pix.keys import flatten_keys
from pix2pix.tables import write_epochs_tsv
from pix2pix.tracking.run_policy import log_scored_epoch, open_run
from pix2pix.tracking.run_record import EPOCH_COLUMNS, epoch_row
from pix2pix.training.generator_file import copy_with_inference
from pix2pix.training.snapshots import list_snapshots
from stages.common import run_stage
from stages.paths import (
    EPOCHS_TSV, FID_PLOT, GENERATOR, INCEPTION_DIR, MLFLOW_BACKLOG, NOTES, REFERENCE_FILE, RUN_RECORD, SAMPLES_DIR,
    SCORES_DIR, SEGMENTER_DIR, SNAPSHOTS_DIR, SUMMARY, TEST_PAIRS,
)

USES = ("dataset", "direction", "eval", "mlflow.enabled")
FILES = EvalFiles(REFERENCE_FILE, INCEPTION_DIR, SEGMENTER_DIR)


def describe(score: SnapshotScore) -> str:
    """One log line of an epoch's scores."""
    metrics = score.metrics
    text = f"epoch {score.epoch}: FID {metrics['fid']:.2f}, KID {metrics['kid']:.4f}, SSIM {metrics['ssim']:.3f}"
    if metrics.get("mask_miou") is not None:
        text += f", mask pixel acc {metrics['mask_pixel_acc']:.3f}, mIoU {metrics['mask_miou']:.3f}"
    return text + (" (cached)" if score.cached else f" ({score.eval_seconds:.1f} s)")


def start_tracking(params: dict[str, Any], last_snapshot: Path, setup: EvalSetup):
    """The MLflow run of these scores (continued or new) and its record."""
    meta = read_snapshot_meta(last_snapshot)
    run_params = {
        **flatten_keys(meta["train_config"] or {}), **flatten_keys({"eval": params["eval"]}), "dataset": params["dataset"],
    }
    return open_run(
        enabled=params["mlflow"]["enabled"], record_path=RUN_RECORD, backlog=MLFLOW_BACKLOG, dataset=params["dataset"],
        direction=params["direction"], run_params=run_params,
        training=f"{meta['config_hash']}:{meta['data_fingerprint']}", tags=setup.notes,
    )


def main(params: dict[str, Any]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(prog="python -m stages.evaluate")
    parser.add_argument("--live", action="store_true", help="score the snapshots so far, write no table (train runs this)")
    live = parser.parse_args(sys.argv[1:]).live
    snapshots = list_snapshots(SNAPSHOTS_DIR)
    if not snapshots:
        raise DataError(f"{SNAPSHOTS_DIR}: no generator snapshot; run `dvc repro train`")
    check_one_run(snapshots)
    device = pick_device()
    setup = eval_setup(params["eval"], params["direction"], open_pairs(TEST_PAIRS), device, FILES)
    key = settings_key(params["eval"], params["direction"], FILES)
    tracker, record = start_tracking(params, snapshots[-1][1], setup)
    scores, rows = [], []
    for _, path in snapshots:
        score = score_snapshot(path, setup, device, SCORES_DIR, key, params["eval"]["sample_count"])
        row = epoch_row(score.epoch, score.train_stats, score.metrics)
        log_scored_epoch(tracker, record, RUN_RECORD, row, score.grid)
        if not (live and score.cached):  # live calls find the earlier epochs cached: say only what is new
            logging.info("%s", describe(score))
        scores.append(score)
        rows.append(row)
    if live:
        return  # the run stays open: training goes on, and the stage after it closes the run
    write_epochs_tsv(EPOCHS_TSV, rows, EPOCH_COLUMNS)
    copy_sample_grids(scores, SAMPLES_DIR)
    ceiling = read_segmenter_scores(SEGMENTER_DIR) if setup.mask_scorer is not None else {}
    summary = summarise(rows, scores[-1].metrics, setup.mode, ceiling)
    write_summary(SUMMARY, summary)
    write_json_atomic(NOTES, setup.notes)
    plot_metric_curve(rows, "fid", FID_PLOT)
    copy_with_inference(snapshots[-1][1], GENERATOR, setup.mode)
    for note in setup.notes.values():
        print(f"note: {note}")
    line = (f"final FID {summary['fid']:.2f}, KID {summary['kid']:.4f}, SSIM {summary['ssim']:.3f} on {summary['eval_images']} "
            f"test images; best FID {summary['best_fid']:.2f} at epoch {summary['best_fid_epoch']}")
    if summary["mask_miou"] is not None:
        line += (f"; mask pixel acc / class acc / mIoU {summary['mask_pixel_acc']:.3f} / {summary['mask_class_acc']:.3f} / "
                 f"{summary['mask_miou']:.3f} (real photos {summary['mask_pixel_acc_real']:.3f} / "
                 f"{summary['mask_class_acc_real']:.3f} / {summary['mask_miou_real']:.3f})")
    print(f"{line} → {SUMMARY}")
    if tracker is not None:
        final_names = METRIC_NAMES + MASK_METRIC_NAMES
        tracker.log_metrics(
            {**{f"final_{k}": summary[k] for k in final_names}, **{k: summary[k] for k in REAL_METRIC_NAMES},
             **{k: v for k, v in summary.items() if k.startswith("cityscapes_fcn_")}},
            step=summary["epochs"],
        )
        for path, folder in ((GENERATOR, "model"), (SUMMARY, None), (NOTES, None), (FID_PLOT, None)):
            tracker.log_artifact(path, folder)
        tracker.finish()


if __name__ == "__main__":
    run_stage(USES, main)
