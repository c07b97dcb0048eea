"""Class maps as the demo page holds them: ``(H, W)`` uint16 class ids, turned into the generator's colour input.

The page paints ids, never colours, so every pixel is a class by construction. The generator was trained on label
maps painted as ``prepare`` paints them (each id its palette colour, void ids :data:`VOID_COLOUR`); :meth:`paint`
does the same, and :meth:`ids_of` reads such a colour image back into ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pix2pix.data.palette import VOID_COLOUR
from pix2pix.errors import DataError
from pix2pix.serving.description import ModelDescription

# What the page sends: one little-endian uint16 per pixel, row-major (ids above 255 exist: Cityscapes' void 255).
ID_DTYPE = np.dtype("<u2")
SHOWN_COLOURS = 5


def _colour_keys(colours: np.ndarray) -> np.ndarray:
    """``(..., 3)`` uint8 RGB → ``(...)`` int64 ``0xRRGGBB``, so colours compare as single numbers."""
    wide = colours.astype(np.int64)
    return (wide[..., 0] << 16) | (wide[..., 1] << 8) | wide[..., 2]


@dataclass(frozen=True)
class LabelCanvas:
    """The classes of a label-map generator (built from its :class:`ModelDescription`)."""

    description: ModelDescription

    @property
    def colours(self) -> np.ndarray:
        """``(K, 3)`` uint8: the colour each id is drawn and fed with (void ids black, as in training)."""
        colours = np.array(self.description.palette, dtype=np.uint8).reshape(-1, 3)
        void = [i for i in self.description.void_ids if i < len(colours)]
        colours[void] = VOID_COLOUR
        return colours

    @property
    def eraser_id(self) -> int:
        """The background class the eraser paints: id 0 unless it is void, else the first class that is not."""
        return next(i for i in range(len(self.colours)) if i not in self.description.void_ids)

    def controls(self) -> list[dict[str, Any]]:
        """One entry per paintable class (void ids excluded): ``{"id", "name", "colour": [R, G, B]}``."""
        names = self.description.class_names or ()
        return [
            {"id": i, "name": names[i], "colour": colour}
            for i, colour in enumerate(self.colours.tolist())
            if i not in self.description.void_ids
        ]

    def paint(self, ids: np.ndarray) -> np.ndarray:
        """``(H, W)`` ids → ``(H, W, 3)`` uint8 generator input; DataError for an id the model has no class for."""
        top = int(ids.max()) if ids.size else 0
        if top >= len(self.colours):
            raise DataError(f"class id {top} is not a class of this model (ids 0–{len(self.colours) - 1})")
        return self.colours[ids]

    def ids_of(self, image: np.ndarray, source: str) -> np.ndarray:
        """``(H, W, 3)`` uint8 painted with the palette (or black for void) → ``(H, W)`` uint16 ids.

        A colour that is no class of the model is a DataError naming ``source`` and the first colours.
        """
        palette = np.array(self.description.palette, dtype=np.uint8).reshape(-1, 3)
        keys, ids = _colour_keys(palette), np.arange(len(palette))
        if self.description.void_ids and int(_colour_keys(np.array(VOID_COLOUR))) not in keys:
            keys, ids = np.append(keys, _colour_keys(np.array(VOID_COLOUR))), np.append(ids, self.description.void_ids[0])
        order = np.argsort(keys)
        keys, ids = keys[order], ids[order]
        pixels = _colour_keys(image)
        at = np.clip(np.searchsorted(keys, pixels), 0, len(keys) - 1)
        unknown = keys[at] != pixels
        if unknown.any():
            shown = [f"#{key:06x}" for key in np.unique(pixels[unknown])[:SHOWN_COLOURS].tolist()]
            raise DataError(
                f"{source}: colours {', '.join(shown)} are no class of this model (ids 0–{len(palette) - 1}); "
                "paint the label map with the model's palette or class ids"
            )
        return ids[at].astype(ID_DTYPE)
