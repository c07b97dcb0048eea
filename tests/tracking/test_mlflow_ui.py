"""The MLflow comparison UI: bound to loopback only, and looked at for real in headless Chromium."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pix2pix.errors import ConfigError, Pix2PixError
from pix2pix.tracking.ui import free_port, runs_page_url, start_ui, stop_ui, ui_command, ui_url, wait_until_serving
from pix2pix.tracking.tracker import Tracker, experiment_name
from tests import browser

VIEWPORT = {"width": 1600, "height": 1000}
FID_BY_RUN = {"run-a": [92.0, 71.5, 55.25], "run-b": [88.0, 64.0, 47.5]}  # steps 1..3, different curves
UI_START_TIMEOUT_S = 120  # MLflow imports for several seconds; CI shares 2 cores
UI_RENDER_TIMEOUT_MS = 60_000


def port_is_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def live_group_members(pgid: int) -> list[str]:
    """``ps`` lines of the processes in group ``pgid`` that still run (a zombie holds no port)."""
    table = subprocess.run(["ps", "-e", "-o", "pgid=,pid=,stat=,args="], capture_output=True, text=True, check=True)
    rows = [line.split(maxsplit=3) for line in table.stdout.splitlines()]
    return [" ".join(row) for row in rows if int(row[0]) == pgid and not row[2].startswith("Z")]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.org"])
def test_non_loopback_host_is_refused(host: str) -> None:
    with pytest.raises(ConfigError, match="not a loopback address"):
        ui_command("sqlite:////tmp/mlflow.db", host=host)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_ui_command_binds_the_given_loopback_host_and_port(host: str) -> None:
    argv = ui_command("sqlite:////data/mlflow.db", host=host, port=5123)
    assert argv[:3] == [sys.executable, "-m", "mlflow"]
    options = dict(zip(argv[4::2], argv[5::2]))
    assert options["--backend-store-uri"] == "sqlite:////data/mlflow.db"
    assert options["--host"] == host and options["--port"] == "5123"


@dataclass
class TwoRunStore:
    uri: str
    experiment_id: str


@pytest.fixture
def two_run_store(tmp_path: Path) -> TwoRunStore:
    """An sqlite store holding two finished runs of the sample, each with a per-epoch ``fid`` and a sample image."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sample = tmp_path / "sample.png"
    Image.new("RGB", (64, 32), (180, 40, 40)).save(sample)
    for run_name, fids in FID_BY_RUN.items():
        tracker = Tracker(uri, experiment_name("sample", "AtoB"), backlog=tmp_path / "backlog.jsonl")
        tracker.start(run_name, {"dataset": "sample", "lr": 0.0002, "epochs": len(fids)}, {})
        for epoch, fid in enumerate(fids, start=1):
            tracker.log_metrics({"fid": fid}, step=epoch)
        tracker.log_image(sample, key="samples", step=len(fids))
        tracker.finish()
        assert not tracker.failed, (tmp_path / "backlog.jsonl").read_text()
    from mlflow import MlflowClient

    experiment = MlflowClient(tracking_uri=uri).get_experiment_by_name(experiment_name("sample", "AtoB"))
    return TwoRunStore(uri, experiment.experiment_id)


@pytest.fixture
def serving_ui(two_run_store: TwoRunStore, tmp_path: Path) -> Iterator[str]:
    """The UI over ``two_run_store`` on a free loopback port; stopped by its PID (and process group) afterwards."""
    port = free_port()
    process = start_ui(two_run_store.uri, port, tmp_path / "ui.log")
    try:
        wait_until_serving(ui_url(port), UI_START_TIMEOUT_S, process)
        yield ui_url(port)
    finally:
        stop_ui(process)
    assert not port_is_open(port), f"port {port} still answers after stop_ui"


@pytest.fixture
def chromium_page() -> Iterator[Any]:
    """A page of Debian's headless Chromium; the first render of MLflow's bundle is slow on a busy CI machine."""
    with browser.chromium_page(VIEWPORT, UI_RENDER_TIMEOUT_MS) as page:
        yield page


@pytest.mark.slow
def test_ui_shows_both_runs_and_their_fid_chart(
    serving_ui: str, two_run_store: TwoRunStore, chromium_page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page = chromium_page
    page.goto(runs_page_url(serving_ui, two_run_store.experiment_id))
    for run_name in FID_BY_RUN:
        expect(page.get_by_text(run_name, exact=True).first).to_be_visible()

    page.locator('label:has(input[name="runs-view-mode"][value="CHART"])').click()
    # The line chart's legend names each run with the metric: "run-a (fid)".
    fid_chart = page.locator('[data-testid="experiment-view-compare-runs-card"]').filter(has_text="(fid)")
    expect(fid_chart).to_have_count(1)
    expect(fid_chart.locator(".js-plotly-plot")).to_be_visible()
    for run_name in FID_BY_RUN:
        expect(fid_chart.get_by_text(f"{run_name} (fid)", exact=True)).to_be_visible()

    screenshot = tmp_path / "mlflow-ui.png"
    page.screenshot(path=str(screenshot))
    with Image.open(screenshot) as image:
        assert image.format == "PNG" and image.size == (VIEWPORT["width"], VIEWPORT["height"])


@pytest.mark.slow
def test_stop_ui_ends_the_server_group_and_frees_its_port(tmp_path: Path) -> None:
    port = free_port()
    process = start_ui(f"sqlite:///{tmp_path / 'mlflow.db'}", port, tmp_path / "ui.log")
    try:
        wait_until_serving(ui_url(port), UI_START_TIMEOUT_S, process)
        assert port_is_open(port)
    finally:
        stop_ui(process)
    assert process.returncode is not None
    assert live_group_members(process.pid) == [], "the server's workers outlived stop_ui"
    assert not port_is_open(port)


@pytest.mark.slow
def test_ui_on_a_taken_port_fails_with_an_error_naming_the_port(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        process = start_ui(f"sqlite:///{tmp_path / 'mlflow.db'}", port, tmp_path / "ui.log")
        try:
            with pytest.raises(Pix2PixError, match=f"127.0.0.1:{port}.*port already in use"):
                wait_until_serving(ui_url(port), UI_START_TIMEOUT_S, process)
        finally:
            stop_ui(process)
