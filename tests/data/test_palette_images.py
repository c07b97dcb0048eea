"""Palette round trip and robust decoding (EXIF, modes, 16-bit, bombs, corrupt files)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from pix2pix.data import images
from pix2pix.errors import DataError
from pix2pix.data.images import decode_rgb, resize_pair
from pix2pix.data.palette import CAR_PALETTE, build_color_mask, palette_array, snap_to_palette
from tests.builders import index_mask


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def test_palette_round_trip_recovers_every_class() -> None:
    mask = index_mask(2, (40, 60))
    colour = build_color_mask(mask, CAR_PALETTE)
    snapped, recovered, off_palette = snap_to_palette(colour, CAR_PALETTE)
    assert np.array_equal(recovered, mask) and np.array_equal(snapped, colour) and off_palette == 0
    assert set(np.unique(mask)) == {0, 1, 2, 3, 4}


def test_extra_palette_entries_add_classes() -> None:
    palette = [*CAR_PALETTE, (128, 64, 128)]  # e.g. road
    mask = np.array([[0, 5]], dtype=np.uint8)
    assert build_color_mask(mask, palette)[0, 1].tolist() == [128, 64, 128]


def test_class_outside_palette_names_source_and_fix() -> None:
    with pytest.raises(DataError, match=r"masks/017.png has class 7 but the palette defines 0–4: extend `data.palette`"):
        build_color_mask(np.array([[7]], dtype=np.uint8), CAR_PALETTE, source="masks/017.png")


def test_exif_orientation_is_applied() -> None:
    tall = np.zeros((30, 10, 3), dtype=np.uint8)
    tall[:5] = 255  # white band at the top
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: viewers turn it 90° clockwise
    data = encoded(Image.fromarray(tall), "JPEG", exif=exif.tobytes(), quality=95)
    upright = decode_rgb(data, "photo.jpg")
    assert upright.shape == (10, 30, 3)
    assert upright[:, -5:].mean() > 200 and upright[:, :5].mean() < 50


@pytest.mark.parametrize("mode", ["L", "P", "LA", "RGBA", "I;16"])
def test_every_mode_becomes_rgb_uint8(mode: str) -> None:
    if mode == "I;16":  # a real 16-bit image uses the 0..65535 range
        image = Image.fromarray((np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000))
    else:
        image = Image.fromarray((np.arange(64, dtype=np.uint8).reshape(8, 8) * 4)).convert(mode)
    decoded = decode_rgb(encoded(image), f"x-{mode}.png")
    assert decoded.dtype == np.uint8 and decoded.shape == (8, 8, 3)
    assert decoded.max() > 200  # the full range survives (16-bit scaled down, not clipped)


def test_transparent_pixels_become_black() -> None:
    rgba = np.full((4, 4, 4), 255, dtype=np.uint8)
    rgba[..., 3] = 0
    assert decode_rgb(encoded(Image.fromarray(rgba, "RGBA")), "clear.png").max() == 0


def test_truncated_file_is_named() -> None:
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    full = encoded(Image.fromarray(noise))
    data = full[: len(full) // 2]
    with pytest.raises(DataError, match="broken.png: cannot be decoded"):
        decode_rgb(data, "broken.png")


def test_decompression_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(DataError, match="decompression bomb"):
        decode_rgb(encoded(Image.new("RGB", (100, 100))), "huge.png")


def test_mask_resize_never_invents_colours() -> None:
    colour = build_color_mask(index_mask(1, (60, 80)), CAR_PALETTE)
    photo = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    _, resized = resize_pair(photo, colour, (37, 53), "stretch")
    allowed = {tuple(c) for c in palette_array(CAR_PALETTE).tolist()}
    assert {tuple(c) for c in resized.reshape(-1, 3).tolist()} <= allowed


def test_photo_and_mask_of_different_sizes_are_refused() -> None:
    with pytest.raises(DataError, match="80x60 but its mask is 40x30"):
        resize_pair(np.zeros((60, 80, 3), np.uint8), np.zeros((30, 40), np.uint8), (32, 32), "stretch")
