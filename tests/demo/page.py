"""Driving the demo page in the browser tests: open it, paint in model pixels, read the canvas, catch generates."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image


def open_demo(page: Any, url: str) -> None:
    """Load the page and wait until it has built itself from ``/api/model``."""
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")


def canvas_pixels(page: Any) -> np.ndarray:
    """The canvas at its own (the model's) size as ``(H, W, 3)`` uint8, read back from the page."""
    width, height, values = page.evaluate(
        """() => { const c = document.getElementById('canvas');
                   return [c.width, c.height, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)]; }"""
    )
    return np.array(values, dtype=np.uint8).reshape(height, width, 4)[..., :3]


def to_page(page: Any, x: int, y: int) -> tuple[float, float]:
    """The page coordinates of the centre of model pixel ``(x, y)`` of the scaled-up canvas."""
    box = page.locator("#canvas").bounding_box()
    width, height = page.evaluate("() => [document.getElementById('canvas').width, document.getElementById('canvas').height]")
    return box["x"] + (x + 0.5) * box["width"] / width, box["y"] + (y + 0.5) * box["height"] / height


def stroke(page: Any, points: list[tuple[int, int]]) -> None:
    """Press at the first model pixel, drag through the others, release."""
    page.mouse.move(*to_page(page, *points[0]))
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*to_page(page, *point), steps=8)
    page.mouse.up()


def generated(page: Any, action: Callable[[], None]) -> bytes:
    """Run ``action``, wait for the generate it causes to be shown, and return the PNG bytes the page shows
    (and offers for download)."""
    from playwright.sync_api import expect

    before = int(page.locator("#output").get_attribute("data-generation") or 0)
    with page.expect_response(lambda response: "/api/generate" in response.url) as caught:
        action()
    assert caught.value.status == 200, caught.value.status_text
    expect(page.locator("#generate")).to_be_enabled()
    assert int(page.locator("#output").get_attribute("data-generation") or 0) > before
    values = page.evaluate(
        """async () => Array.from(new Uint8Array(await (await fetch(document.getElementById('output').src)).arrayBuffer()))"""
    )
    return bytes(values)


def png_pixels(data: bytes) -> np.ndarray:
    """Decode PNG bytes to ``(H, W, 3)`` uint8."""
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def colours_in(image: np.ndarray) -> set[tuple[int, int, int]]:
    """The distinct colours of ``(H, W, 3)`` uint8."""
    return set(map(tuple, np.unique(image.reshape(-1, 3), axis=0).tolist()))
