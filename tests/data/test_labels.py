"""The one label-map decoder, on label images encoded every way published datasets store them (see datasets.md)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from pix2pix.data.labels import ColourCoding, decode_label_map, paint_labels, resize_labels
from pix2pix.data.palette import CAR_PALETTE, VOID_COLOUR, ClassTable, colour_map
from pix2pix.errors import DataError
from tests.builders import index_mask

AUTO = ColourCoding.of(ClassTable())


def encoded(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def ids_of(size_hw: tuple[int, int] = (30, 40), top: int = 11) -> np.ndarray:
    """``(H, W)`` ids 0..top in horizontal bands: every id present."""
    rows = np.arange(size_hw[0]) * (top + 1) // size_hw[0]
    return np.repeat(rows[:, None], size_hw[1], axis=1).astype(np.uint8)


def test_single_channel_l_mask_gives_its_values_as_ids() -> None:
    ids = ids_of()
    labels = decode_label_map(encoded(Image.fromarray(ids, "L")), "trainannot/0001.png", AUTO)
    np.testing.assert_array_equal(labels.ids, ids)
    assert labels.void is None and labels.encoding == "index"


def test_palette_mask_gives_its_indices_not_its_colour_table() -> None:
    # Pascal VOC SegmentationClass: mode P, indices are class ids (255 = void border), colour table = VOC map.
    ids = ids_of(top=20)
    ids[0, :] = 255
    image = Image.fromarray(ids, "P")
    image.putpalette(colour_map(256)[::-1].reshape(-1).tolist())  # a table unrelated to the ids
    labels = decode_label_map(encoded(image), "SegmentationClass/a.png", AUTO)
    np.testing.assert_array_equal(labels.ids, ids)


def test_sixteen_bit_mask_keeps_ids_above_255() -> None:
    ids = (ids_of(top=5).astype(np.uint16) * 100) + 7  # up to 507
    labels = decode_label_map(encoded(Image.fromarray(ids)), "ade/a.png", AUTO)
    assert labels.ids.dtype == np.uint16 and int(labels.ids.max()) == 507
    np.testing.assert_array_equal(labels.ids, ids)


def test_32_bit_integer_mask_is_read_and_instance_ids_are_refused() -> None:
    ids = ids_of().astype(np.int32) * 30  # mode I (PNG cannot hold it; TIFF can, and older Pillows read 16-bit PNGs so)
    labels = decode_label_map(encoded(Image.fromarray(ids), "TIFF"), "a.tif", AUTO)
    np.testing.assert_array_equal(labels.ids, ids)
    with pytest.raises(DataError, match=r"b.tif: label id 70000 is above 65535.*instance"):
        decode_label_map(encoded(Image.fromarray(np.full((4, 4), 70000, np.int32)), "TIFF"), "b.tif", AUTO)


def test_kaggle_rgba_mask_with_equal_channels_gives_the_class_ids() -> None:
    # datasets.md: Kaggle "Car Segmentation" masks are RGBA with R = G = B = class id (0..4) and A = 255.
    ids = index_mask(0, (60, 80))
    rgba = np.dstack([ids, ids, ids, np.full_like(ids, 255)])
    labels = decode_label_map(encoded(Image.fromarray(rgba, "RGBA")), "masks/car%2000.png", AUTO)
    np.testing.assert_array_equal(labels.ids, ids)
    assert labels.void is None and labels.encoding == "grey"


def test_grey_coded_rgb_mask_gives_the_class_ids() -> None:
    ids = ids_of()
    labels = decode_label_map(encoded(Image.fromarray(np.dstack([ids] * 3), "RGB")), "m.png", AUTO)
    np.testing.assert_array_equal(labels.ids, ids)


def test_transparent_pixels_of_a_grey_coded_mask_are_void() -> None:
    ids = ids_of()
    alpha = np.full_like(ids, 255)
    alpha[:, :5] = 0
    labels = decode_label_map(encoded(Image.fromarray(np.dstack([ids, ids, ids, alpha]), "RGBA")), "m.png", AUTO)
    assert labels.void is not None and labels.void[:, :5].all() and not labels.void[:, 5:].any()
    colour, counts, void_pixels = paint_labels(labels, ClassTable(), ())
    assert void_pixels == 30 * 5 and (colour[:, :5] == VOID_COLOUR).all()
    assert counts.sum() == 30 * 35


def test_colour_coded_mask_maps_palette_colours_to_ids() -> None:
    ids = index_mask(2, (60, 80))
    colour = np.asarray(CAR_PALETTE, dtype=np.uint8)[ids]
    labels = decode_label_map(encoded(Image.fromarray(colour)), "seg.png", AUTO)
    np.testing.assert_array_equal(labels.ids, ids)
    assert (labels.encoding, labels.snapped) == ("colour", 0)


def test_colour_coded_jpeg_mask_is_snapped_and_the_snapped_pixels_counted() -> None:
    palette = ((128, 64, 128), (70, 70, 70), (107, 142, 35))  # Cityscapes road, building, vegetation
    table = ClassTable(dict(enumerate(palette)), {}, explicit=True)
    ids = ids_of(top=2)
    data = encoded(Image.fromarray(np.asarray(palette, dtype=np.uint8)[ids]), "JPEG", quality=75)
    labels = decode_label_map(data, "gtFine/x_color.jpg", ColourCoding.of(table))
    assert labels.snapped > 0
    # Away from the band edges (where JPEG blocks mix two classes) every pixel is its own class again.
    np.testing.assert_array_equal(labels.ids[2:8], ids[2:8])
    np.testing.assert_array_equal(labels.ids[-8:-2], ids[-8:-2])


def test_unknown_colours_name_the_file_and_the_colours() -> None:
    colour = np.asarray(CAR_PALETTE, dtype=np.uint8)[index_mask(0, (60, 80))]
    colour[:3, :3] = (200, 120, 30)
    with pytest.raises(DataError, match=r"labels/odd.png: 1 colours are not in the palette.*\(200, 120, 30\) x9 px.*--palette FILE"):
        decode_label_map(encoded(Image.fromarray(colour)), "labels/odd.png", AUTO)


def test_void_ids_are_painted_black_and_left_out_of_the_counts() -> None:
    labels = decode_label_map(encoded(Image.fromarray(ids_of(), "L")), "m.png", AUTO)
    colour, counts, void_pixels = paint_labels(labels, ClassTable(), (11,))
    assert (colour[labels.ids == 11] == VOID_COLOUR).all() and counts[11] == 0
    assert void_pixels == int((labels.ids == 11).sum()) > 0


def test_nearest_resize_of_labels_never_invents_ids() -> None:
    ids = (ids_of(top=5).astype(np.uint16) * 100)
    resized = resize_labels(decode_label_map(encoded(Image.fromarray(ids)), "m.png", AUTO), (17, 23))
    assert resized.ids.shape == (17, 23) and set(np.unique(resized.ids)) <= set(np.unique(ids))


def test_damaged_car_red_under_auto_snaps_to_the_red_class_not_a_nearer_auto_colour() -> None:
    # (235, 20, 10) is nearer the `auto` colour of id 73, (224, 0, 0), than car red (255, 0, 0): but only red is in use.
    ids = index_mask(0, (60, 80))
    colour = np.asarray(CAR_PALETTE, dtype=np.uint8)[ids]
    edge = (ids == 1) & (np.roll(ids, 1, axis=0) != 1)
    colour[edge] = (235, 20, 10)
    labels = decode_label_map(encoded(Image.fromarray(colour)), "m.png", AUTO)
    np.testing.assert_array_equal(labels.ids, ids)
    assert labels.snapped == int(edge.sum()) > 0
