"""Headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by Playwright (never Playwright's
own browser download, which fails offline)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
INSTALL_HINT = (
    "run `make test` as root (scripts/system-deps.sh installs Debian's chromium) or `apt-get install -y chromium`, "
    "and `.venv/bin/pip install -e '.[dev]'` (it brings playwright)"
)
# Without the background-networking flags Chromium keeps dialling Google's hosts, which this network refuses.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@contextmanager
def chromium_browser() -> Iterator[Any]:
    """A Playwright ``Browser`` of Debian's headless Chromium; the test fails naming the fix when either is missing."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: {INSTALL_HINT}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"the playwright package is missing: {INSTALL_HINT}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def chromium_page(viewport: dict[str, int], timeout_ms: int) -> Iterator[Any]:
    """A fresh page of :func:`chromium_browser` with ``timeout_ms`` for every wait and ``expect``."""
    from playwright.sync_api import expect

    with chromium_browser() as browser:
        page = browser.new_page(viewport=viewport)
        page.set_default_timeout(timeout_ms)
        expect.set_options(timeout=timeout_ms)
        yield page
