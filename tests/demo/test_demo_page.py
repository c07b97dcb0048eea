"""The demo page of a label-map generator, in headless Chromium (issue 21, tests 1–6)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from typer.testing import CliRunner

from pix2pix.cli import app
from pix2pix.data.palette import build_color_mask
from pix2pix.data.store import open_pairs, read_manifest
from tests.builders import index_mask, png_bytes
from tests.demo.conftest import IMAGE_SIZE, LABEL_MODEL, RecordedPage, demo_server
from tests.demo.page import canvas_pixels, colours_in, generated, open_demo, png_pixels, stroke, to_page

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def label_demo(demo_project: Path) -> Iterator[str]:
    with demo_server(demo_project, LABEL_MODEL) as url:
        yield url


@pytest.fixture(scope="module")
def manifest(demo_project: Path) -> dict:
    return read_manifest(demo_project / "data/prepared")


def palette_colours(manifest: dict) -> set[tuple[int, int, int]]:
    return {tuple(colour) for colour in manifest["palette"]}


def ids_of(pixels: np.ndarray, manifest: dict) -> np.ndarray:
    """Class ids of canvas pixels (every pixel must be a palette colour)."""
    ids = np.full(pixels.shape[:2], -1)
    for class_id, colour in enumerate(manifest["palette"]):
        ids[(pixels == colour).all(axis=2)] = class_id
    assert (ids >= 0).all(), "the canvas holds a colour that is no class"
    return ids


def class_id(manifest: dict, name: str) -> int:
    return manifest["class_names"].index(name)


def test_one_control_per_class_with_its_name_and_exact_colour(recorded_page: RecordedPage, label_demo: str, manifest: dict) -> None:
    page = recorded_page.page
    open_demo(page, label_demo)
    controls = page.locator(".class-control")
    assert controls.count() == len(manifest["class_names"]) == 5
    for i, (name, (r, g, b)) in enumerate(zip(manifest["class_names"], manifest["palette"])):
        control = controls.nth(i)
        assert control.locator(".class-name").inner_text() == name
        swatch = control.locator(".swatch").evaluate("element => getComputedStyle(element).backgroundColor")
        assert swatch == f"rgb({r}, {g}, {b})"


def test_the_map_is_held_at_the_models_size_and_shown_larger_without_smoothing(
    recorded_page: RecordedPage, label_demo: str
) -> None:
    page = recorded_page.page
    open_demo(page, label_demo)
    canvas = page.locator("#canvas")
    assert canvas.evaluate("c => [c.width, c.height]") == [IMAGE_SIZE, IMAGE_SIZE]
    assert canvas.bounding_box()["width"] >= 4 * IMAGE_SIZE
    for element in ("#canvas", "#output", "#target"):
        assert page.locator(element).evaluate("e => getComputedStyle(e).imageRendering") == "pixelated"


def test_stroke_fill_eraser_and_undo_change_exactly_their_pixels(recorded_page: RecordedPage, label_demo: str, manifest: dict) -> None:
    page = recorded_page.page
    open_demo(page, label_demo)
    background, window, wheel = (class_id(manifest, name) for name in ("background", "window", "wheel"))
    last = IMAGE_SIZE - 1
    generated(page, lambda: page.click("#clear"))
    assert (ids_of(canvas_pixels(page), manifest) == background).all()

    page.get_by_role("radio", name="window").click()
    page.select_option("#brush-size", "3")
    generated(page, lambda: stroke(page, [(0, 32), (last, 32)]))
    ids = ids_of(canvas_pixels(page), manifest)
    expected = np.full((IMAGE_SIZE, IMAGE_SIZE), background)
    expected[31:34, :] = window  # a 3 px hard-edged brush along row 32
    np.testing.assert_array_equal(ids, expected)

    page.get_by_role("radio", name="wheel").click()
    page.click("[data-tool=fill]")
    generated(page, lambda: page.mouse.click(*to_page(page, 10, 10)))
    above, _ = ndimage.label(expected == background)  # 4-connected, as the page fills
    expected[above == above[10, 10]] = wheel
    after_fill = ids_of(canvas_pixels(page), manifest)
    np.testing.assert_array_equal(after_fill, expected)

    page.click("[data-tool=eraser]")
    page.select_option("#brush-size", "7")
    generated(page, lambda: stroke(page, [(20, 25), (20, 40)]))
    erased = ids_of(canvas_pixels(page), manifest)
    changed = erased != after_fill
    rows, cols = np.nonzero(changed)
    assert changed.any() and (erased[changed] == background).all()
    assert rows.min() >= 22 and rows.max() <= 43 and cols.min() >= 17 and cols.max() <= 23  # within the 7 px brush
    assert (erased[25:41, 20] == background).all()

    generated(page, lambda: page.click("#undo"))
    np.testing.assert_array_equal(ids_of(canvas_pixels(page), manifest), after_fill)
    assert colours_in(canvas_pixels(page)) <= palette_colours(manifest)


def test_generate_gives_a_model_size_png_the_seed_decides(recorded_page: RecordedPage, label_demo: str) -> None:
    page = recorded_page.page
    open_demo(page, label_demo)
    first = generated(page, lambda: stroke(page, [(5, 5), (50, 40)]))
    second = generated(page, lambda: stroke(page, [(50, 5), (5, 50)]))
    assert png_pixels(first).shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
    assert not np.array_equal(png_pixels(first), png_pixels(second))

    page.fill("#seed", "5")
    again = [generated(page, lambda: page.click("#generate")) for _ in range(2)]
    assert again[0] == again[1]
    page.fill("#seed", "6")
    other_seed = generated(page, lambda: page.click("#generate"))
    assert not np.array_equal(png_pixels(other_seed), png_pixels(again[0]))
    assert page.locator("#download").get_attribute("download") == "pix2pix-seed6.png"
    assert "ms generator" in page.locator("#latency").inner_text()
    assert page.locator("#test-time").inner_text() == "batch norm: test_batch (batch 1), dropout on"


def test_example_shows_the_test_pairs_a_side_exactly(recorded_page: RecordedPage, label_demo: str, demo_project: Path) -> None:
    page = recorded_page.page
    open_demo(page, label_demo)
    generated(page, lambda: page.click("#example"))
    index = int(page.locator("#canvas").get_attribute("data-source").removeprefix("example "))
    pair = open_pairs(demo_project / "data/splits/test.npy")[index]
    np.testing.assert_array_equal(canvas_pixels(page), pair[0])
    target = page.locator("#target").evaluate(
        """async img => { await img.decode(); const c = document.createElement('canvas'); c.width = img.naturalWidth;
             c.height = img.naturalHeight; const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
             return Array.from(ctx.getImageData(0, 0, c.width, c.height).data); }"""
    )
    np.testing.assert_array_equal(np.array(target, dtype=np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE, 4)[..., :3], pair[1])


def test_uploaded_test_mask_gives_the_pixels_of_translate_with_the_same_seed(
    recorded_page: RecordedPage, label_demo: str, demo_project: Path, tmp_path: Path
) -> None:
    seed = 7
    mask = tmp_path / "mask.png"
    mask.write_bytes(png_bytes(np.asarray(open_pairs(demo_project / "data/splits/test.npy")[0][0])))
    result = CliRunner().invoke(
        app, ["translate", str(mask), "-m", str(demo_project / LABEL_MODEL), "-o", str(tmp_path / "out"),
              "--seed", str(seed), "--device", "cpu"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    translated = np.asarray(Image.open(tmp_path / "out" / "mask.png").convert("RGB"))

    page = recorded_page.page
    open_demo(page, label_demo)
    page.fill("#seed", str(seed))
    body = generated(page, lambda: page.set_input_files("#upload", str(mask)))
    np.testing.assert_array_equal(png_pixels(body), translated)


def test_larger_colour_mask_is_decoded_to_palette_colours_only(
    recorded_page: RecordedPage, label_demo: str, manifest: dict, tmp_path: Path
) -> None:
    large = tmp_path / "large.png"
    ids = index_mask(3, (2 * IMAGE_SIZE, 2 * IMAGE_SIZE))
    large.write_bytes(png_bytes(build_color_mask(ids, manifest["palette"])))
    page = recorded_page.page
    open_demo(page, label_demo)
    generated(page, lambda: page.set_input_files("#upload", str(large)))
    shown = canvas_pixels(page)
    assert colours_in(shown) <= palette_colours(manifest)
    # Nearest halving samples each 2×2 block at its centre, rounded down-right: the odd rows and columns.
    np.testing.assert_array_equal(ids_of(shown, manifest), ids[1::2, 1::2])
    assert page.locator("#message").is_hidden()


def test_broken_file_is_a_message_on_the_page_and_a_4xx(recorded_page: RecordedPage, label_demo: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n but then not a picture")
    page = recorded_page.page
    open_demo(page, label_demo)
    with page.expect_response(lambda response: "/api/upload" in response.url) as caught:
        page.set_input_files("#upload", str(broken))
    assert caught.value.status == 400
    expect(page.locator("#message")).to_be_visible()
    expect(page.locator("#message")).to_contain_text("broken.png")
    assert "Traceback" not in page.locator("#message").inner_text()

    request = urllib.request.Request(f"{label_demo}/api/upload?name=broken.png", data=broken.read_bytes(), method="POST")
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=30)
    assert answer.value.code == 400
    assert "broken.png" in json.loads(answer.value.read())["error"]


def test_a_whole_session_logs_no_error_and_requests_only_loopback(
    recorded_page: RecordedPage, label_demo: str, manifest: dict, tmp_path: Path
) -> None:
    upload = tmp_path / "mine.png"
    upload.write_bytes(png_bytes(build_color_mask(index_mask(1, (IMAGE_SIZE, IMAGE_SIZE)), manifest["palette"])))
    page = recorded_page.page
    open_demo(page, label_demo)
    generated(page, lambda: stroke(page, [(3, 3), (60, 60)]))
    page.click("[data-tool=fill]")
    generated(page, lambda: page.mouse.click(*to_page(page, 60, 2)))
    generated(page, lambda: page.click("#example"))
    generated(page, lambda: page.set_input_files("#upload", str(upload)))
    generated(page, lambda: page.click("#variation"))
    with page.expect_download() as download:
        page.click("#download")
    assert png_pixels(Path(download.value.path()).read_bytes()).shape == (IMAGE_SIZE, IMAGE_SIZE, 3)

    assert recorded_page.console_errors == []
    hosts = {urllib.parse.urlsplit(url).hostname for url in recorded_page.requested if url.startswith("http")}
    assert hosts == {"127.0.0.1"}
    assert {urllib.parse.urlsplit(url).scheme for url in recorded_page.requested} <= {"http", "data", "blob"}


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.org"])
def test_non_loopback_host_is_refused_without_the_flag(host: str, demo_project: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "-m", str(demo_project / LABEL_MODEL), "--host", host])
    assert result.exit_code == 1
    assert "not a loopback address" in result.output and "--allow-remote" in result.output
