"""A tiny trained-format project for the demo tests: real prepared pairs and split, generators saved by the
library, and the demo served by the real CLI (one server per module, started by its PID and stopped by it)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

from pix2pix.data.prepare import PrepareConfig, prepare_pairs
from pix2pix.data.split import SplitConfig, write_split
from pix2pix.tracking.ui import free_port, stop_ui, ui_url, wait_until_serving
from pix2pix.training.checkpoint import save_atomic
from pix2pix.training.generator_file import generator_payload
from pix2pix.training.model import InferenceMode, ModelConfig, build_generator
from tests import browser
from tests.builders import kaggle_members, write_zip
from tests.project import REPO

IMAGE_SIZE = 64
MODEL = ModelConfig(image_size=IMAGE_SIZE, ngf=8, ndf=8)
PAIRS = 8
DEMO_START_TIMEOUT_S = 120  # torch imports for seconds; CI shares 2 cores
PAGE_TIMEOUT_MS = 30_000
VIEWPORT = {"width": 1400, "height": 900}
LABEL_MODEL = Path("models/generator.pt")
PHOTO_MODEL = Path("models/photo_generator.pt")


@pytest.fixture(scope="session")
def demo_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder laid out as the pipeline leaves it: data/prepared (Kaggle car masks, 64 px), data/splits, and two
    freshly initialised generators (ngf 8): mask → photo (``LABEL_MODEL``) and photo → mask (``PHOTO_MODEL``)."""
    root = tmp_path_factory.mktemp("demo-project")
    archive = write_zip(root / "cars.zip", kaggle_members(PAIRS, size_hw=(IMAGE_SIZE, IMAGE_SIZE)))
    prepare_pairs(archive, root / "data/prepared", PrepareConfig(image_size=(IMAGE_SIZE, IMAGE_SIZE)), workers=1)
    write_split(root / "data/prepared", root / "data/splits", SplitConfig(seed=0, test_fraction=0.5))
    torch.manual_seed(0)
    generator = build_generator(MODEL)
    for path, direction in ((LABEL_MODEL, "AtoB"), (PHOTO_MODEL, "BtoA")):
        save_atomic(generator_payload(generator, MODEL, direction, 1, InferenceMode(), None), root / path)
    return root


@contextmanager
def demo_server(project: Path, model: Path) -> Iterator[str]:
    """``pix2pix demo -m model`` run in ``project`` on a free loopback port; yields its address."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "pix2pix", "demo", "-m", str(model), "--port", str(port), "--device", "cpu"]
    with open(project / f"demo-{port}.log", "wb") as log:
        process = subprocess.Popen(
            command, cwd=project, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_serving(ui_url(port), DEMO_START_TIMEOUT_S, process, what="the demo")
        yield ui_url(port)
    finally:
        stop_ui(process)


@dataclass
class RecordedPage:
    """A Playwright page with every console error, page error and requested URL it produced."""

    page: Any
    console_errors: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with browser.chromium_browser() as chromium_browser:
        yield chromium_browser


@pytest.fixture
def recorded_page(chromium: Any) -> Iterator[RecordedPage]:
    from playwright.sync_api import expect

    page = chromium.new_page(viewport=VIEWPORT)
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    expect.set_options(timeout=PAGE_TIMEOUT_MS)
    record = RecordedPage(page)
    page.on("console", lambda message: message.type == "error" and record.console_errors.append(message.text))
    page.on("pageerror", lambda error: record.console_errors.append(str(error)))
    page.on("request", lambda request: record.requested.append(request.url))
    try:
        yield record
    finally:
        page.close()
