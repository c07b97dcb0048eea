"""The one label-map decoder: every way a dataset stores per-pixel class ids, read into one id array.

Used by ``prepare`` (building A from a mask), ``translate`` (a mask given as input) and mask-based metrics.

- Single-channel ``L`` and ``P`` (the indices, never the colour table), ``1``, ``I;16`` and ``I`` (ids above
  255 allowed).
- ``RGB``/``RGBA`` (and ``LA``) whose colour channels are equal at every pixel: grey-coded ids, as the
  Kaggle car masks are stored (RGBA, R = G = B = id, A = 255). Alpha is ignored when fully opaque;
  otherwise pixels with alpha below :data:`TRANSPARENT_BELOW` are void.
- Colour-coded ``RGB`` label images: each colour is looked up in the palette; colours within the snap
  distance of a palette colour in use in that image (JPEG damage, blended edges) are snapped and counted; any
  other colour is an error naming the file and the colours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from pix2pix.data.images import open_image
from pix2pix.data.palette import VOID_COLOUR, ClassTable, nearest_colours
from pix2pix.errors import DataError

# Largest euclidean RGB distance a damaged colour may be from its palette colour; never more than half the
# distance between the two closest palette colours in use, so a snap is never a guess between two classes.
SNAP_DISTANCE_MAX = 40.0
# A palette colour is "in use" in an image when some pixel has it exactly, or, for pixels no such colour explains,
# when it is the nearest palette colour (within SNAP_DISTANCE_MAX) of at least this share of the pixels (a flat
# JPEG area of one class). Only colours in use are snapped to: a damaged red edge must become the red class, not
# the nearest of the 256 `auto` colours.
IN_USE_SHARE = 0.005
TRANSPARENT_BELOW = 128
# Ids go up to what a 16-bit PNG holds; larger values are instance ids or garbage, not classes.
MAX_CLASS_ID = 65535
# How many unknown colours an error message lists.
SHOWN_COLOURS = 5


@dataclass(frozen=True)
class ColourCoding:
    """How colour-coded label images are read: palette ``colours (K, 3)`` uint8 are ids ``ids (K,)``."""

    ids: np.ndarray
    colours: np.ndarray

    @classmethod
    def of(cls, table: ClassTable) -> ColourCoding:
        """The coding of a class table (its colours, or the ``auto`` colour map)."""
        return cls(*table.decoding_colours())


def snap_distance(colours: np.ndarray) -> float:
    """How far a colour may be from its palette colour among ``colours (K, 3)``: see :data:`SNAP_DISTANCE_MAX`."""
    wide = colours.astype(np.int64)
    gaps = np.sqrt(((wide[:, None, :] - wide[None, :, :]) ** 2).sum(axis=2))
    np.fill_diagonal(gaps, np.inf)
    closest = float(gaps.min()) if len(colours) > 1 else np.inf
    return min(SNAP_DISTANCE_MAX, closest / 2 - 0.5)


@dataclass
class LabelMap:
    """A decoded label map.

    ``ids``: ``(H, W)`` unsigned integer class ids (uint8, or uint16 for ids above 255). ``void``: ``(H, W)`` bool of
    transparent pixels, or ``None``. ``snapped``: pixels whose colour was snapped to a palette colour.
    ``encoding``: ``index`` (single channel), ``grey`` (equal colour channels) or ``colour``. ``stored_hw``: the
    image's size as stored, before any resize.
    """

    ids: np.ndarray
    void: np.ndarray | None = None
    snapped: int = 0
    encoding: str = "index"
    stored_hw: tuple[int, int] = (0, 0)


def decode_label_map(data: bytes, source: str, coding: ColourCoding, size_hw: tuple[int, int] | None = None) -> LabelMap:
    """Decode the label image ``data`` (named ``source`` in errors) into class ids; see the module notes.

    With ``size_hw`` the image is resized NEAREST to it right after decoding (ids never blend), before any
    array is made, so a 6000x4000 RGBA mask bound for a 500x375 photo never exists as numpy arrays at full size.
    ``stored_hw`` of the result is the size as stored.
    """
    image = open_image(data, source)
    stored_hw = (image.height, image.width)
    if size_hw is not None and stored_hw != tuple(size_hw):
        image = image.resize((size_hw[1], size_hw[0]), Image.Resampling.NEAREST)
    labels = _decode_ids(image, source, coding)
    labels.stored_hw = stored_hw
    return labels


def _decode_ids(image: Image.Image, source: str, coding: ColourCoding) -> LabelMap:
    """Class ids of a decoded label image, by its mode (see the module notes)."""
    mode = image.mode
    if mode in ("L", "P", "1"):
        return LabelMap(np.asarray(image, dtype=np.uint8))
    if mode.startswith("I;16"):
        return LabelMap(np.asarray(image).astype(np.uint16))
    if mode == "I":
        ids = np.asarray(image, dtype=np.int64)
        if ids.size and int(ids.min()) < 0:
            raise DataError(f"{source}: label ids must not be negative, found {int(ids.min())}")
        if ids.size and int(ids.max()) > MAX_CLASS_ID:
            raise DataError(
                f"{source}: label id {int(ids.max())} is above {MAX_CLASS_ID}; is this an instance-id image? "
                "Give the class-id images instead"
            )
        return LabelMap(ids.astype(np.uint16))
    if mode == "F":
        raise DataError(f"{source}: a floating-point image is not a label map; save the class ids as an L, P or I;16 PNG")
    if mode in ("LA", "PA"):
        bands = np.asarray(image)  # PA keeps its palette indices in the first band, like P
        return LabelMap(bands[..., 0].copy(), _void_of(bands[..., 1]), encoding="index" if mode == "PA" else "grey")
    rgba = np.asarray(image if mode in ("RGB", "RGBA") else image.convert("RGB"))
    rgb = rgba[..., :3]
    void = _void_of(rgba[..., 3]) if rgba.shape[-1] == 4 else None
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
        return LabelMap(rgb[..., 0].copy(), void, encoding="grey")
    return _colour_coded(rgb, void, source, coding)


def _void_of(alpha: np.ndarray) -> np.ndarray | None:
    """Transparent pixels of an alpha channel, or ``None`` when the image is fully opaque."""
    transparent = alpha < TRANSPARENT_BELOW
    return transparent if transparent.any() else None


def _colour_coded(rgb: np.ndarray, void: np.ndarray | None, source: str, coding: ColourCoding) -> LabelMap:
    """Ids of a colour-coded label image: palette colours in use, and colours snapped to them (see module notes)."""
    considered = np.ones(rgb.shape[:2], dtype=bool) if void is None else ~void
    nearest, distance = nearest_colours(rgb, coding.colours)
    used = np.flatnonzero(np.bincount(nearest[(distance == 0) & considered], minlength=len(coding.colours)))
    unresolved = considered
    if len(used):
        _, to_used = nearest_colours(rgb, coding.colours[used])
        unresolved = considered & (to_used > snap_distance(coding.colours[used]))
    if unresolved.any():
        # Classes with no exact pixel (a JPEG's flat areas): the palette colours nearest to a real share of the rest.
        share = np.bincount(nearest[unresolved & (distance <= SNAP_DISTANCE_MAX)], minlength=len(coding.colours))
        used = np.union1d(used, np.flatnonzero(share >= IN_USE_SHARE * max(1, int(considered.sum())))).astype(np.int64)
    if len(used) == 0:
        used = np.arange(len(coding.colours))
    index, distance = nearest_colours(rgb, coding.colours[used])
    tolerance = snap_distance(coding.colours[used])
    unknown = (distance > tolerance) & considered
    if unknown.any():
        colours, counts = np.unique(rgb[unknown], axis=0, return_counts=True)
        order = np.argsort(-counts)[:SHOWN_COLOURS]
        listed = ", ".join(f"{tuple(int(v) for v in colours[i])} x{int(counts[i])} px" for i in order)
        raise DataError(
            f"{source}: {len(colours)} colours are not in the palette (more than {tolerance:.0f} from every palette "
            f"colour in this image), e.g. {listed}; give the dataset's colours as a palette file (--palette FILE "
            "or `data.palette`)"
        )
    snapped = int(np.count_nonzero((distance > 0) & considered))
    ids = coding.ids[used][index]
    dtype = np.uint8 if int(coding.ids.max()) < 256 else np.uint16
    return LabelMap(ids.astype(dtype), void, snapped, encoding="colour")


def paint_labels(labels: LabelMap, table: ClassTable, void_ids: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, int]:
    """Colour a label map: ``(colour (H, W, 3) uint8, pixel count per id (max_id + 1,) int64, void pixels)``.

    Ids take the table's colour (else the ``auto`` colour map's); ``void_ids`` and transparent pixels are
    painted :data:`VOID_COLOUR` and left out of the per-id counts.
    """
    ids = labels.ids
    top = int(ids.max()) if ids.size else 0
    colour = table.colour_lookup(top + 1, void_ids)[ids]
    void = np.isin(ids, np.asarray(void_ids, dtype=np.int64)) if void_ids else np.zeros(ids.shape, dtype=bool)
    if labels.void is not None:
        void |= labels.void
    colour[void] = VOID_COLOUR
    counts = np.bincount(ids[~void].astype(np.int64).ravel(), minlength=top + 1)
    return colour, counts, int(np.count_nonzero(void))
