"""MLflow tracking that can never stop a run.

One experiment per dataset and direction, one MLflow run per scored training run (named after ``$DVC_EXP_NAME``
when DVC sets it). Every call goes through :meth:`Tracker._safely`: when the tracking store fails, the
event is appended to a local JSON-lines backlog (with the store, experiment and run it was meant for), a warning
is issued once, and the work goes on; :func:`pix2pix.tracking.replay.replay_backlog` sends it later.

A tracking server that is down costs seconds, not minutes: MLflow's HTTP client retries 7 times with a
back-off factor of 2 by default (about 4.5 minutes); :data:`HTTP_RETRY_SETTINGS` bounds it to about 10 s
unless the user set those variables.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# MLflow's own environment variables: 2 retries, 1 s back-off, 10 s per request (a user's values win).
HTTP_RETRY_SETTINGS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}


def bound_http_retries() -> None:
    """Make a tracking server that does not answer cost seconds (MLflow reads these at each request session)."""
    for name, value in HTTP_RETRY_SETTINGS.items():
        os.environ.setdefault(name, value)


def project_root(start: Path | None = None) -> Path:
    """The repository the user works in: ``$DVC_ROOT`` if set, else the git top level, else cwd.

    ``dvc exp run --temp`` / ``--queue`` run stages in a throw-away copy under ``<repo>/.dvc/tmp/exps/``
    (which is then both ``$DVC_ROOT`` and a git top level); such a path maps back to ``<repo>`` so that
    the tracking store outlives the copy.
    """
    if os.environ.get("DVC_ROOT"):
        root = Path(os.environ["DVC_ROOT"]).resolve()
    else:
        try:
            top = subprocess.run(
                ["git", "rev-parse", "--show-toplevel"], cwd=start or Path.cwd(), capture_output=True, text=True, check=True
            ).stdout.strip()
            root = Path(top).resolve()
        except (OSError, subprocess.CalledProcessError):
            root = (start or Path.cwd()).resolve()
    return outside_temp_workspace(root)


def outside_temp_workspace(path: Path) -> Path:
    """``<repo>/.dvc/tmp/exps/<anything>`` → ``<repo>``; other paths unchanged."""
    parts = path.parts
    for i in range(len(parts) - 3):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return path


def tracking_uri(root: Path | None = None) -> str:
    """``$MLFLOW_TRACKING_URI``, else an absolute ``sqlite:///<root>/mlflow.db`` (a relative one would land in a
    DVC temp workspace that is deleted after the experiment)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(root or project_root()) / 'mlflow.db'}"


def experiment_name(dataset: str, direction: str) -> str:
    """The MLflow experiment that groups comparable runs."""
    return f"pix2pix-{dataset}-{direction}"


@dataclass
class Tracker:
    """A handle on one MLflow run; ``run_id`` survives in the checkpoint so a resumed run continues it."""

    uri: str
    experiment: str
    backlog: Path
    run_id: str | None = None
    failed: bool = False
    system_metrics: bool = True
    local_id: str = field(default_factory=lambda: uuid.uuid4().hex)  # ties backlog events of one run together
    _client: Any = field(default=None, repr=False)
    _monitor: Any = field(default=None, repr=False)

    def _safely(self, what: str, call: Callable[[], Any], record: Mapping[str, Any]) -> Any:
        if not self.failed:
            try:
                return call()
            except Exception as error:  # any store failure (network, locked DB, server error) must not kill training
                self.failed = True
                warnings.warn(
                    f"MLflow tracking at {self.uri} failed during {what} ({error}); the work continues and "
                    f"tracking events are written to {self.backlog}",
                    RuntimeWarning,
                    stacklevel=3,
                )
        self.backlog.parent.mkdir(parents=True, exist_ok=True)
        context = {"uri": self.uri, "experiment": self.experiment, "run_id": self.run_id, "local_id": self.local_id}
        with open(self.backlog, "a") as handle:
            handle.write(json.dumps({"event": what, **context, **record}, default=str) + "\n")
        return None

    def start(self, run_name: str | None, params: Mapping[str, Any], tags: Mapping[str, str]) -> str | None:
        """Start a new run (logging ``params``) or, when ``run_id`` is set, continue that run."""

        def call() -> str:
            from mlflow import MlflowClient

            bound_http_retries()
            self._client = MlflowClient(tracking_uri=self.uri)
            if self.run_id is not None:
                self._client.update_run(self.run_id, status="RUNNING")
                return self.run_id
            experiment = self._client.get_experiment_by_name(self.experiment)
            if experiment is None:
                root = Path(self.uri.removeprefix("sqlite:///")).parent if self.uri.startswith("sqlite:///") else None
                location = (root / "mlartifacts" / self.experiment).as_uri() if root else None
                experiment_id = self._client.create_experiment(self.experiment, artifact_location=location)
            else:
                experiment_id = experiment.experiment_id
            run = self._client.create_run(experiment_id, run_name=run_name, tags=dict(tags))
            for key, value in params.items():
                self._client.log_param(run.info.run_id, key, value)
            return run.info.run_id

        resuming = self.run_id is not None
        self.run_id = self._safely("start", call, {"run_name": run_name, "params": dict(params), "tags": dict(tags)})
        if self.run_id is not None and not self.failed and self.system_metrics:
            self._start_system_metrics(resuming)
        return self.run_id

    def _start_system_metrics(self, resuming: bool) -> None:
        """CPU/GPU/memory/disk/network usage as ``system/*`` metrics every 10 s (MLflow's monitor, needs psutil)."""
        try:
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            self._monitor = SystemMetricsMonitor(self.run_id, resume_logging=resuming, tracking_uri=self.uri)
            self._monitor.start()
        except Exception as error:  # optional extra: psutil missing, unsupported platform
            warnings.warn(f"MLflow system metrics unavailable ({error})", RuntimeWarning, stacklevel=3)
            self._monitor = None

    def log_metrics(self, metrics: Mapping[str, float | None], step: int) -> None:
        """Log the finite numbers of ``metrics`` at ``step`` (the epoch); ``None`` values are skipped."""
        values = {k: float(v) for k, v in metrics.items() if v is not None}

        def call() -> None:
            for key, value in values.items():
                self._client.log_metric(self.run_id, key, value, step=step)

        self._safely("metrics", call, {"step": step, "metrics": values})

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Set text tags on the run (notes: the network used, why a metric is null), new or continued."""

        def call() -> None:
            for key, value in tags.items():
                self._client.set_tag(self.run_id, key, value)

        self._safely("tags", call, {"tags": dict(tags)})

    def log_image(self, image_path: Path, key: str, step: int) -> None:
        """Log an image file under ``key`` at ``step`` (shown as a step slider in the MLflow UI)."""

        def call() -> None:
            from PIL import Image

            with Image.open(image_path) as image:
                self._client.log_image(self.run_id, image.convert("RGB"), key=key, step=step)

        self._safely("image", call, {"key": key, "step": step, "path": str(image_path)})

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """Copy a file into the run's artifacts."""
        self._safely(
            "artifact", lambda: self._client.log_artifact(self.run_id, str(path), artifact_path),
            {"path": str(path), "artifact_path": artifact_path},
        )

    def finish(self, status: str = "FINISHED") -> None:
        """Mark the run FINISHED / FAILED / KILLED (and stop the system-metrics monitor)."""
        if self._monitor is not None:
            self._monitor.finish()
            self._monitor = None
        self._safely("finish", lambda: self._client.set_terminated(self.run_id, status=status), {"status": status})
