"""DVC stage `evaluate`: score the final generator (same code and seed as the per-epoch scores), write
metrics/summary.json and the FID curve, and close the MLflow run with the model attached."""

from __future__ import annotations

from typing import Any

from pix2pix.training.checkpoint import load_generator
from pix2pix.evaluation.scoring import METRIC_NAMES, evaluate_generator, load_reference, split_direction
from pix2pix.evaluation.inception import IS_UNAVAILABLE
from pix2pix.evaluation.inception_files import load_network_choice
from pix2pix.evaluation.summary import plot_metric_curve, summarise, write_summary
from pix2pix.tracking.run_record import RunRecord, read_epochs_tsv
from pix2pix.devices import pick_device
from pix2pix.data.store import open_pairs
from pix2pix.tracking.tracker import Tracker, experiment_name, tracking_uri
from stages.common import run_stage
from stages.paths import EPOCHS_TSV, FID_PLOT, GENERATOR, INCEPTION_DIR, MLFLOW_BACKLOG, REFERENCE_FILE, RUN_RECORD, SUMMARY, TEST_PAIRS

USES = ("dataset", "direction", "seed", "eval.inference_dropout", "mlflow.enabled")


def main(params: dict[str, Any]) -> None:
    device = pick_device()
    generator, _, _ = load_generator(GENERATOR, device)
    reference = load_reference(REFERENCE_FILE)
    extractor = load_network_choice(INCEPTION_DIR, device)
    inputs, targets = split_direction(open_pairs(TEST_PAIRS)[reference.indices], params["direction"])
    final, _ = evaluate_generator(
        generator, inputs, targets, extractor, reference, device,
        inference_dropout=params["eval"]["inference_dropout"], seed=params["seed"],
    )
    rows = read_epochs_tsv(EPOCHS_TSV)
    is_note = None if extractor.has_classifier else IS_UNAVAILABLE
    summary = summarise(rows, final, extractor.kind, is_note)
    write_summary(SUMMARY, summary)
    plot_metric_curve(rows, "fid", FID_PLOT)
    if is_note:
        print(f"WARNING: {is_note}")
    print(f"final FID {summary['fid']:.2f}, KID {summary['kid']:.4f}, SSIM {summary['ssim']:.3f} on {summary['eval_images']} "
          f"test images; best FID {summary['best_fid']:.2f} at epoch {summary['best_fid_epoch']} → {SUMMARY}")
    record = RunRecord.read(RUN_RECORD)
    if params["mlflow"]["enabled"] and record and record.run_id:
        tracker = Tracker(
            uri=tracking_uri(), experiment=experiment_name(params["dataset"], params["direction"]),
            backlog=MLFLOW_BACKLOG, run_id=record.run_id, system_metrics=False,
        )
        tracker.start(None, {}, {})
        tracker.log_metrics({f"final_{k}": summary[k] for k in METRIC_NAMES}, step=summary["epochs"])
        for path, folder in ((GENERATOR, "model"), (SUMMARY, None), (FID_PLOT, None)):
            tracker.log_artifact(path, folder)
        tracker.finish()


if __name__ == "__main__":
    run_stage(USES, main)
