"""DVC stage `evaluate`: score the final generator (same code, seed and test-time mode as the per-epoch scores),
write metrics/summary.json (numbers only), metrics/notes.json (what the numbers mean, why some are null) and the
FID curve, and close the MLflow run with the model attached."""

from __future__ import annotations

from typing import Any

from pix2pix.atomic import write_json_atomic
from pix2pix.data.store import open_pairs
from pix2pix.devices import pick_device
from pix2pix.evaluation.scoring import METRIC_NAMES, evaluate_generator
from pix2pix.evaluation.segmentation import MASK_METRIC_NAMES, REAL_METRIC_NAMES
from pix2pix.evaluation.summary import plot_metric_curve, summarise, write_summary
from pix2pix.tracking.run_record import RunRecord, read_epochs_tsv
from pix2pix.tracking.tracker import Tracker, experiment_name, tracking_uri
from pix2pix.training.checkpoint import load_generator
from stages.common import run_stage
from stages.eval_setup import EVAL_KEYS, eval_setup, read_segmenter_scores
from stages.paths import EPOCHS_TSV, FID_PLOT, GENERATOR, MLFLOW_BACKLOG, NOTES, RUN_RECORD, SUMMARY, TEST_PAIRS

USES = ("dataset", "mlflow.enabled", *EVAL_KEYS)


def main(params: dict[str, Any]) -> None:
    device = pick_device()
    generator, _, _ = load_generator(GENERATOR, device)
    setup = eval_setup(params, open_pairs(TEST_PAIRS), device)
    final, _ = evaluate_generator(
        generator, setup.inputs, setup.targets, setup.extractor, setup.reference, device,
        setup.mode, setup.seed, setup.mask_scorer,
    )
    rows = read_epochs_tsv(EPOCHS_TSV)
    ceiling = read_segmenter_scores() if setup.mask_scorer is not None else {}
    summary = summarise(rows, final, setup.mode, ceiling)
    write_summary(SUMMARY, summary)
    write_json_atomic(NOTES, setup.notes)
    plot_metric_curve(rows, "fid", FID_PLOT)
    for note in setup.notes.values():
        print(f"note: {note}")
    line = (f"final FID {summary['fid']:.2f}, KID {summary['kid']:.4f}, SSIM {summary['ssim']:.3f} on {summary['eval_images']} "
            f"test images; best FID {summary['best_fid']:.2f} at epoch {summary['best_fid_epoch']}")
    if summary["mask_miou"] is not None:
        line += (f"; mask pixel acc / class acc / mIoU {summary['mask_pixel_acc']:.3f} / {summary['mask_class_acc']:.3f} / "
                 f"{summary['mask_miou']:.3f} (real photos {summary['mask_pixel_acc_real']:.3f} / "
                 f"{summary['mask_class_acc_real']:.3f} / {summary['mask_miou_real']:.3f})")
    print(f"{line} → {SUMMARY}")
    record = RunRecord.read(RUN_RECORD)
    if params["mlflow"]["enabled"] and record and record.run_id:
        tracker = Tracker(
            uri=tracking_uri(), experiment=experiment_name(params["dataset"], params["direction"]),
            backlog=MLFLOW_BACKLOG, run_id=record.run_id, system_metrics=False,
        )
        tracker.start(None, {}, {})
        tracker.set_tags(setup.notes)
        final_names = METRIC_NAMES + MASK_METRIC_NAMES
        tracker.log_metrics(
            {**{f"final_{k}": summary[k] for k in final_names}, **{k: summary[k] for k in REAL_METRIC_NAMES}},
            step=summary["epochs"],
        )
        for path, folder in ((GENERATOR, "model"), (SUMMARY, None), (NOTES, None), (FID_PLOT, None)):
            tracker.log_artifact(path, folder)
        tracker.finish()


if __name__ == "__main__":
    run_stage(USES, main)
