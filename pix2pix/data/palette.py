"""Class palette: the one place that maps mask class indices to RGB colours and back.

Default: the car-segmentation classes 0..4 = background, car body, wheel, lights, window, drawn
black, red, green, blue and white (the seed archive's colours).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pix2pix.errors import DataError

CAR_CLASSES: tuple[str, ...] = ("background", "car", "wheel", "lights", "window")
CAR_PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0),
    (255, 0, 0),
    (0, 255, 0),
    (0, 0, 255),
    (255, 255, 255),
)


def palette_array(palette: Sequence[Sequence[int]]) -> np.ndarray:
    """Return ``palette`` as a ``(K, 3)`` uint8 array, checking each entry is an RGB triple in 0..255."""
    array = np.asarray(palette, dtype=np.int64)
    if array.ndim != 2 or array.shape[1] != 3 or len(array) < 2:
        raise DataError(f"palette must be a list of at least two [R, G, B] triples, got {palette!r}")
    if array.min() < 0 or array.max() > 255:
        raise DataError(f"palette colours must be in 0..255, got {palette!r}")
    if len({tuple(c) for c in array.tolist()}) != len(array):
        raise DataError(f"palette has duplicate colours: {palette!r}")
    return array.astype(np.uint8)


def build_color_mask(index_mask: np.ndarray, palette: Sequence[Sequence[int]], source: str = "mask") -> np.ndarray:
    """Turn a ``(H, W)`` integer class-index mask into a ``(H, W, 3)`` uint8 RGB mask.

    Raises :class:`DataError` naming ``source`` when a class index has no palette entry.
    """
    colours = palette_array(palette)
    if index_mask.ndim != 2:
        raise DataError(f"{source}: a class-index mask must be single-channel, got shape {index_mask.shape}")
    top = int(index_mask.max()) if index_mask.size else 0
    if index_mask.size and int(index_mask.min()) < 0 or top >= len(colours):
        raise DataError(
            f"{source} has class {top} but the palette defines 0–{len(colours) - 1}: "
            "extend `data.palette` in params.yaml"
        )
    return colours[index_mask.astype(np.intp)]


def snap_to_palette(color_mask: np.ndarray, palette: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray, int]:
    """Snap every pixel of a ``(H, W, 3)`` colour mask to its nearest palette colour.

    Returns ``(snapped_rgb uint8 (H, W, 3), class_index uint8 (H, W), off_palette_pixel_count)``, where the
    count is the number of pixels that were not exactly a palette colour (e.g. blended by a resize).
    """
    colours = palette_array(palette).astype(np.int32)
    pixels = color_mask.reshape(-1, 3).astype(np.int32)
    distances = ((pixels[:, None, :] - colours[None, :, :]) ** 2).sum(axis=2)
    index = distances.argmin(axis=1)
    off_palette = int(np.count_nonzero(distances[np.arange(len(pixels)), index]))
    index_mask = index.reshape(color_mask.shape[:2]).astype(np.uint8)
    return colours[index_mask].astype(np.uint8), index_mask, off_palette
