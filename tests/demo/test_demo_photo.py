"""The demo page of a generator whose input is a photo (here photo → mask, direction BtoA): upload and examples only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import expect

from pix2pix.data.store import open_pairs
from tests.builders import jpeg_bytes, real_photo
from tests.demo.conftest import IMAGE_SIZE, PHOTO_MODEL, RecordedPage, demo_server
from tests.demo.page import canvas_pixels, generated, open_demo, png_pixels

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def photo_demo(demo_project: Path) -> Iterator[str]:
    with demo_server(demo_project, PHOTO_MODEL) as url:
        yield url


def test_photo_input_offers_no_paint_tools(recorded_page: RecordedPage, photo_demo: str) -> None:
    page = recorded_page.page
    open_demo(page, photo_demo)
    expect(page.locator("#paint-tools")).to_be_hidden()
    assert page.locator(".class-control").count() == 0
    expect(page.locator("#example")).to_be_enabled()
    expect(page.locator("#input-title")).to_have_text("Input photo")


def test_photo_example_shows_the_pairs_photo_and_generates(
    recorded_page: RecordedPage, photo_demo: str, demo_project: Path
) -> None:
    page = recorded_page.page
    open_demo(page, photo_demo)
    output = generated(page, lambda: page.click("#example"))
    index = int(page.locator("#canvas").get_attribute("data-source").removeprefix("example "))
    pair = open_pairs(demo_project / "data/splits/test.npy")[index]
    np.testing.assert_array_equal(canvas_pixels(page), pair[1])  # BtoA: the input is the photo, B
    assert png_pixels(output).shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
    assert recorded_page.console_errors == []


def test_uploaded_photo_of_another_size_is_resized_and_generates(
    recorded_page: RecordedPage, photo_demo: str, tmp_path: Path
) -> None:
    photo = tmp_path / "street.jpg"
    photo.write_bytes(jpeg_bytes(real_photo(2, (90, 120))))
    page = recorded_page.page
    open_demo(page, photo_demo)
    output = generated(page, lambda: page.set_input_files("#upload", str(photo)))
    assert png_pixels(output).shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
    assert page.locator("#canvas").get_attribute("data-source") == "upload"
    assert canvas_pixels(page).std() > 10  # the photo is drawn, not the blank canvas
