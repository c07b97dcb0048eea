"""Class maps ↔ generator input colours, with void ids painted black as training painted them."""

from __future__ import annotations

import numpy as np
import pytest

from pix2pix.data.palette import CAR_CLASSES, CAR_PALETTE, VOID_COLOUR
from pix2pix.errors import DataError
from pix2pix.serving.description import ModelDescription
from pix2pix.serving.label_canvas import LabelCanvas


def canvas(void_ids: tuple[int, ...] = ()) -> LabelCanvas:
    return LabelCanvas(ModelDescription("label_map", CAR_PALETTE, CAR_CLASSES, void_ids, (4, 4), "AtoB"))


def test_paint_then_read_back_gives_the_same_ids() -> None:
    ids = np.arange(16, dtype=np.uint16).reshape(4, 4) % 5
    painted = canvas().paint(ids)
    assert painted.dtype == np.uint8 and painted.shape == (4, 4, 3)
    np.testing.assert_array_equal(painted[0, 1], CAR_PALETTE[1])
    np.testing.assert_array_equal(canvas().ids_of(painted, "map"), ids)


def test_void_ids_are_painted_black_and_get_no_control() -> None:
    voided = canvas(void_ids=(4,))
    np.testing.assert_array_equal(voided.paint(np.full((2, 2), 4, dtype=np.uint16)), np.full((2, 2, 3), VOID_COLOUR))
    assert [control["id"] for control in voided.controls()] == [0, 1, 2, 3]


def test_eraser_paints_background_unless_it_is_void() -> None:
    assert canvas().eraser_id == 0
    assert canvas(void_ids=(0,)).eraser_id == 1


def test_an_id_beyond_the_classes_is_refused() -> None:
    with pytest.raises(DataError, match="class id 5 is not a class of this model"):
        canvas().paint(np.array([[5]], dtype=np.uint16))


def test_a_colour_outside_the_palette_is_named() -> None:
    image = np.zeros((2, 2, 3), dtype=np.uint8)
    image[0, 0] = (1, 2, 3)
    with pytest.raises(DataError, match=r"upload.png: colours #010203 are no class"):
        canvas().ids_of(image, "upload.png")
