"""The whole pipeline as users run it: dvc repro, a no-op repro, dvc exp run -S, dvc exp show, MLflow runs."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import yaml

from pix2pix.tables import read_epochs_tsv
from pix2pix.tracking.run_record import EPOCH_COLUMNS
from tests.project import make_project, run, set_key

TINY = {
    "image_size": 32, "batch_size": 4, "epochs": 2, "data.sample.n_pairs": 30, "data.min_valid_pairs": 10,
    "model.ngf": 8, "model.ndf": 8, "train.snapshot_every": 1, "eval.num_images": 6, "eval.sample_count": 2,
    "eval.segmenter.width": 4, "eval.segmenter.epochs": 2,
}
METRICS_FILES = ("metrics/epochs.tsv", "metrics/summary.json")


def set_param(root: Path, dotted: str, value: object) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    set_key(params, dotted, value)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def mlflow_runs(root: Path) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("pix2pix-sample-AtoB")
    return client.search_runs([experiment.experiment_id]), client


@pytest.mark.slow
def test_repro_noop_and_experiment_land_in_dvc_and_mlflow(tmp_path: Path) -> None:
    root = make_project(tmp_path / "project", TINY)
    run(["dvc", "repro"], root)
    rows = read_epochs_tsv(root / "metrics/epochs.tsv")
    # Epoch 0 is the untrained generator (train.snapshot_untrained): scored, without losses.
    assert [r["epoch"] for r in rows] == [0, 1, 2] and all(r["fid"] is not None and r["fid"] > 0 for r in rows)
    assert rows[0]["loss_g"] is None and rows[1]["loss_g"] is not None
    assert list(rows[0]) == list(EPOCH_COLUMNS)
    summary = json.loads((root / "metrics/summary.json").read_text())
    assert summary["fid"] == pytest.approx(rows[-1]["fid"], rel=1e-5)  # evaluate reproduces the last epoch's score (TSV keeps 6 digits)
    assert all(value is None or isinstance(value, (int, float)) for value in summary.values())  # a table of numbers
    notes = json.loads((root / "metrics/notes.json").read_text())
    assert (summary["is_mean"] is None) == notes["inception"].startswith("trunk")
    assert all(rows[-1][name] is not None for name in ("mask_pixel_acc", "mask_class_acc", "mask_miou"))
    assert 0 <= summary["mask_miou"] <= 1 and 0 <= summary["mask_miou_real"] <= 1
    assert summary["eval_batch_statistics"] == 1 and summary["eval_batch_size"] == 1
    assert [r["epoch"] for r in read_epochs_tsv(root / "metrics/timings.tsv")] == [1, 2]
    assert [r["epoch"] for r in read_epochs_tsv(root / "metrics/losses.tsv")] == [1, 2]
    assert len(list((root / "metrics/samples").glob("epoch_*.png"))) == 3

    # `pix2pix evaluate` with its defaults (read from params.yaml) reproduces the pipeline's FID.
    cli = run(["pix2pix", "evaluate", "data/splits/test.npy", "-o", str(tmp_path / "cli.json")], root)
    assert json.loads((tmp_path / "cli.json").read_text())["fid"] == pytest.approx(summary["fid"], abs=1e-6), cli.stdout

    again = run(["dvc", "repro"], root)
    assert "Running stage" not in again.stdout

    # Another way of scoring (fewer eval images, an edit of the scoring code) re-scores every epoch, trains nothing.
    checkpoints = {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in (root / "models/checkpoints").iterdir()}
    snapshots = {path: path.stat().st_mtime_ns for path in (root / "models/snapshots").iterdir()}
    set_param(root, "eval.num_images", 4)
    with open(root / "pix2pix/evaluation/summary.py", "a") as source:
        source.write("\n# an edit of the scoring code\n")
    rescored = run(["dvc", "repro"], root)
    ran = re.findall(r"Running stage '(\w+)'", rescored.stdout)
    assert "train" not in ran and ran[-1] == "evaluate"  # (reference and segmenter read eval.num_images too)
    assert {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in checkpoints} == checkpoints
    assert {path: path.stat().st_mtime_ns for path in (root / "models/snapshots").iterdir()} == snapshots
    new_rows = read_epochs_tsv(root / "metrics/epochs.tsv")
    assert [r["epoch"] for r in new_rows] == [0, 1, 2]
    assert all(new["fid"] != old["fid"] for new, old in zip(new_rows, rows))  # 4 images, not 6: every epoch re-scored
    assert json.loads((root / "metrics/summary.json").read_text())["eval_images"] == 4

    params = yaml.safe_load((root / "params.yaml").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump({**params, "image_size": 64}, sort_keys=False))
    assert set(json.loads(run(["dvc", "status", "--json"], root).stdout)) == {"prepare"}  # and all that follows it
    params["epochs"] = 3
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    longer = run(["dvc", "repro"], root)
    assert set(re.findall(r"Running stage '(\w+)'", longer.stdout)) == {"train", "evaluate"}
    assert "resumed after epoch 2" in longer.stdout + longer.stderr  # one more epoch on top of the checkpoint
    assert [r["epoch"] for r in read_epochs_tsv(root / "metrics/epochs.tsv")] == [0, 1, 2, 3]

    run(["git", "add", "-A"], root)
    run(["git", "commit", "-q", "-m", "baseline run"], root)
    run(["dvc", "exp", "run", "-S", "batch_size=2", "--name", "bs2"], root)
    shown = json.loads(run(["dvc", "exp", "show", "--json"], root).stdout)
    text = json.dumps(shown)
    assert '"bs2"' in text and '"batch_size": 2' in text and '"fid"' in text

    # --temp runs in a copy under .dvc/tmp/exps that is deleted afterwards: its MLflow run must land here anyway.
    run(["dvc", "exp", "run", "--temp", "-S", "lr=0.0001", "--name", "lowlr"], root)
    assert '"lowlr"' in run(["dvc", "exp", "show", "--json"], root).stdout

    # A queued sweep: two experiments run by a DVC queue worker, each its own MLflow run in the same store.
    run(["dvc", "exp", "run", "--queue", "-S", "lr=0.0003,0.0004"], root)
    run(["dvc", "queue", "start"], root)
    deadline = time.monotonic() + 600
    while re.search(r"Queued|Running", run(["dvc", "queue", "status"], root).stdout) and time.monotonic() < deadline:
        time.sleep(3)
    assert run(["dvc", "queue", "status"], root).stdout.count("Success") == 2

    runs, client = mlflow_runs(root)
    # baseline (2 epochs) + its re-scoring (new params → new run) + the 3-epoch continuation + bs2 + lowlr + 2 queued
    assert len(runs) == 7
    assert {r.info.run_name for r in runs} >= {"bs2", "lowlr"}
    two_epoch = [r for r in runs if [m.step for m in client.get_metric_history(r.info.run_id, "fid")] == [0, 1, 2]]
    baseline, rescoring = sorted(two_epoch, key=lambda r: r.data.params["eval.num_images"], reverse=True)
    assert rescoring.data.tags["resumed_from_run"] == baseline.info.run_id and rescoring.data.params["eval.num_images"] == "4"
    continued = [r for r in runs if r.data.tags.get("resumed_from_run") == rescoring.info.run_id]
    assert len(continued) == 1 and continued[0].data.params["epochs"] == "3"
    runs = [r for r in runs if r.info.run_id not in {t.info.run_id for t in two_epoch}]
    assert sorted(r.data.params["lr"] for r in runs if r.data.params["lr"] in ("0.0003", "0.0004")) == ["0.0003", "0.0004"]
    for mlflow_run in runs:
        history = client.get_metric_history(mlflow_run.info.run_id, "fid")
        assert [m.step for m in history] == [0, 1, 2, 3]
        assert mlflow_run.data.params["batch_size"] in ("2", "4")
        exp_name = mlflow_run.data.tags["dvc_exp_name"]
        assert exp_name == "" or exp_name == mlflow_run.info.run_name
        assert mlflow_run.info.status == "FINISHED"
        assert {"inception", "test_time", "mask_consistency"} <= set(mlflow_run.data.tags)

    # Two runs of the same commit (here the workspace's last experiment) write the same metrics files, byte for
    # byte: the timings live elsewhere.
    first = {name: (root / name).read_bytes() for name in METRICS_FILES}
    run(["dvc", "repro", "-f", "-s", "train"], root)
    run(["dvc", "repro", "-f", "-s", "evaluate"], root)
    assert {name: (root / name).read_bytes() for name in METRICS_FILES} == first


@pytest.mark.slow
def test_exp_run_with_two_gpus_trains_in_two_processes_and_locks_it(tmp_path: Path) -> None:
    root = make_project(tmp_path / "project", {**TINY, "epochs": 1, "mlflow.enabled": False})
    result = run(["dvc", "exp", "run", "-S", "train.gpus=2", "--name", "two"], root)
    assert "trained 1 epochs in 2 process(es)" in result.stdout + result.stderr
    shown = json.dumps(json.loads(run(["dvc", "exp", "show", "--json"], root).stdout))
    assert '"gpus": 2' in shown and '"two"' in shown
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert lock["stages"]["train"]["params"]["params.yaml"]["train"]["gpus"] == 2
