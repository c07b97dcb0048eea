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

from pix2pix.tracking.tracker import Tracker, experiment_name, tracking_uri


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


def test_unreachable_server_warns_once_and_keeps_events(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    tracker = Tracker(uri="http://127.0.0.1:9", experiment="pix2pix-sample-AtoB", backlog=tmp_path / "backlog.jsonl")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracker.start("exp", {"lr": 0.0002}, {})
        for epoch in (1, 2):
            tracker.log_metrics({"fid": 100.0 / epoch}, step=epoch)
        tracker.finish()
    assert len([w for w in caught if issubclass(w.category, RuntimeWarning)]) == 1
    events = [json.loads(line) for line in (tmp_path / "backlog.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["start", "metrics", "metrics", "finish"]
    assert events[2] == {"event": "metrics", "step": 2, "metrics": {"fid": 50.0}}


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
