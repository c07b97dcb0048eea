"""MLflow tracking: the store location, run continuation, and a broken store that never stops training."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from PIL import Image

from typer.testing import CliRunner

from pix2pix.cli import app
from pix2pix.tracking.run_policy import open_run
from pix2pix.tracking.tracker import HTTP_RETRY_SETTINGS, Tracker, experiment_name, tracking_uri
from pix2pix.tracking.ui import free_port


def test_uri_comes_from_the_environment_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert tracking_uri(tmp_path) == "http://tracking.example:5000"


def test_default_uri_is_an_absolute_sqlite_path_under_dvc_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"


def test_run_logs_params_metrics_images_and_continues(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri=uri, experiment=experiment_name("sample", "AtoB"), backlog=tmp_path / "backlog.jsonl")
    run_id = tracker.start("exp-1", {"batch_size": 8}, {"dataset": "sample"})
    tracker.log_metrics({"fid": 300.0, "is_mean": None}, step=1)
    grid = tmp_path / "grid.png"
    Image.fromarray(np.zeros((8, 24, 3), dtype=np.uint8)).save(grid)
    tracker.log_image(grid, key="samples", step=1)
    tracker.finish()

    resumed = Tracker(uri=uri, experiment=experiment_name("sample", "AtoB"), backlog=tmp_path / "backlog.jsonl", run_id=run_id)
    resumed.start("exp-1", {}, {})
    resumed.log_metrics({"fid": 250.0}, step=2)
    resumed.finish()

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.info.run_name == "exp-1" and run.data.params == {"batch_size": "8"} and run.info.status == "FINISHED"
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "fid")] == [(1, 300.0), (2, 250.0)]
    assert "is_mean" not in run.data.metrics  # None is never logged as a number
    assert not (tmp_path / "backlog.jsonl").exists()


def test_unreachable_server_costs_seconds_warns_once_and_keeps_events(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in HTTP_RETRY_SETTINGS:  # the project's bounds, not a user's
        monkeypatch.delenv(name, raising=False)
    tracker = Tracker(uri=f"http://127.0.0.1:{free_port()}", experiment="pix2pix-sample-AtoB", backlog=tmp_path / "backlog.jsonl")
    started = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracker.start("exp", {"lr": 0.0002}, {"dataset": "sample"})
        for epoch in (1, 2):
            tracker.log_metrics({"fid": 100.0 / epoch}, step=epoch)
        tracker.finish()
    assert time.monotonic() - started < 90  # MLflow's own defaults retry for about 4.5 minutes
    assert len([w for w in caught if issubclass(w.category, RuntimeWarning)]) == 1
    events = [json.loads(line) for line in (tmp_path / "backlog.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["start", "metrics", "metrics", "finish"]
    assert events[2]["step"] == 2 and events[2]["metrics"] == {"fid": 50.0} and events[2]["local_id"] == tracker.local_id


def test_backlog_replays_into_the_store_once(tmp_path: Path) -> None:
    backlog = tmp_path / "backlog.jsonl"
    down = Tracker(uri=f"http://127.0.0.1:{free_port()}", experiment="pix2pix-sample-AtoB", backlog=backlog)
    down.start("exp", {"lr": 0.0002}, {"dataset": "sample"})
    for epoch in (1, 2):
        down.log_metrics({"fid": 100.0 / epoch}, step=epoch)
    down.finish()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = CliRunner().invoke(app, ["tracking", "replay", "--backlog", str(backlog), "--uri", uri])
    assert result.exit_code == 0, result.output
    assert not backlog.exists()
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("pix2pix-sample-AtoB").experiment_id])
    assert run.info.run_name == "exp" and run.data.params == {"lr": "0.0002"} and run.info.status == "FINISHED"
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "fid")] == [(1, 100.0), (2, 50.0)]
    again = CliRunner().invoke(app, ["tracking", "replay", "--backlog", str(backlog), "--uri", uri])
    assert "nothing to replay" in again.output


def test_store_of_a_temp_experiment_is_the_main_repository(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpab12cd"))
    assert tracking_uri() == f"sqlite:///{(tmp_path / 'repo').resolve()}/mlflow.db"


def test_system_metrics_are_sampled_while_the_run_is_open(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri=uri, experiment="pix2pix-sample-AtoB", backlog=tmp_path / "backlog.jsonl")
    run_id = tracker.start("sys", {}, {})
    time.sleep(3)
    tracker.finish()
    metrics = MlflowClient(tracking_uri=uri).get_run(run_id).data.metrics
    assert any(key.startswith("system/cpu_utilization") for key in metrics)


def test_the_next_scored_run_replays_the_backlog_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.write_text("a file where the store's folder belongs")  # the first tracker fails, as at a locked store
    uri = f"sqlite:///{store / 'mlflow.db'}"
    backlog = tmp_path / "backlog.jsonl"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        failed = Tracker(uri=uri, experiment="pix2pix-sample-AtoB", backlog=backlog, system_metrics=False)
        failed.start("early", {"lr": 0.0002}, {})
        failed.log_metrics({"fid": 300.0}, step=0)
    assert backlog.is_file()
    store.unlink()
    store.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    tracker, _ = open_run(
        enabled=True, record_path=tmp_path / "run.json", backlog=backlog, dataset="sample", direction="AtoB",
        run_params={"lr": 0.0002}, training="abc:def", tags={},
    )
    tracker.finish()
    assert not backlog.exists()
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("pix2pix-sample-AtoB").experiment_id])
    early = [run for run in runs if run.info.run_name == "early"]
    assert len(runs) == 2 and [m.value for m in client.get_metric_history(early[0].info.run_id, "fid")] == [300.0]
