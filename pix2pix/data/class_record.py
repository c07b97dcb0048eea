"""The classes of a label-map data set: how workers read and paint its maps, and what the manifest says of them.

:func:`label_plan` resolves the class table (palette, names, void ids) once for every worker (for Cityscapes under
the defaults, the 19 official trainIds of :mod:`pix2pix.data.cityscapes`); :class:`ClassTally`
counts pixels per class id over the kept pairs; :func:`class_record` turns both into the manifest's ``palette``
(``[R, G, B]`` per id, index = id: exactly the colours painted), ``class_names``, ``void_ids`` and pixel shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pix2pix.choices import PALETTE_AUTO
from pix2pix.data import cityscapes
from pix2pix.data.labels import ColourCoding
from pix2pix.data.layouts import Layout
from pix2pix.data.palette import CAR_CLASSES, ClassTable, resolve_classes
from pix2pix.errors import DataError

# Files named per unknown class id in the error of an explicit palette.
FILES_PER_MISSING_ID = 3


@dataclass(frozen=True)
class LabelPlan:
    """How every worker reads and paints label maps: the class table, its colour coding and the void ids.

    ``cityscapes_train_ids``: label files named ``*_gtFine_labelIds`` are mapped to the official trainIds before
    they are painted (``*_gtFine_trainIds`` files hold them already). ``notes``: what the manifest says of it.
    """

    table: ClassTable
    coding: ColourCoding
    void_ids: tuple[int, ...]
    cityscapes_train_ids: bool = False
    notes: tuple[str, ...] = ()

    def class_ids(self, ids: np.ndarray, source: str) -> np.ndarray:
        """The class ids ``(H, W)`` to paint of the decoded ids ``(H, W)`` of the label file ``source``."""
        return cityscapes.class_ids_of_label_file(ids, source) if self.cityscapes_train_ids else ids


def label_plan(
    palette: str | Sequence[Sequence[int]], classes: str | None, void_ids: Sequence[int] | None, layout: Layout
) -> LabelPlan:
    """The class table of ``palette`` (names from ``classes``, else the dataset's class file) and the void ids
    (``None``: the layout's own).

    Cityscapes with ``palette: auto`` and no ``classes`` is read the way the pix2pix paper scores it: the 19
    official trainIds in their official colours, everything else ignore (255, void by default). An explicit
    palette or class file reads the ids of the label files as they are (e.g. all 34 labelIds).
    """
    void = layout.void_ids if void_ids is None else tuple(void_ids)
    if layout.kind == "cityscapes" and isinstance(palette, str) and palette == PALETTE_AUTO and not classes:
        table = cityscapes.train_id_table()
        return LabelPlan(table, ColourCoding.of(table), tuple(sorted(set(void))), True, (cityscapes.TRAIN_ID_NOTE,))
    class_file = Path(classes) if classes else layout.class_file
    table = resolve_classes(palette, class_file)
    if layout.kind == "seed":
        # The seed archive is the car set (datasets.md) but ships no classes.txt: its names are known (a class
        # file beside it, as the sample ships, names its classes instead).
        table = ClassTable(table.colours, {**dict(enumerate(CAR_CLASSES)), **table.names}, table.explicit)
    return LabelPlan(table, ColourCoding.of(table), tuple(sorted(set(void))))


@dataclass
class ClassTally:
    """Pixels per class id over all kept pairs, and a few files per id (for errors about unknown ids)."""

    pixels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    void_pixels: int = 0
    files: dict[int, list[str]] = field(default_factory=dict)

    def add(self, counts: np.ndarray | None, void_pixels: int, mask_file: str) -> None:
        """Count one kept pair's pixels per id (``counts``, int64 ``(max_id + 1,)``; None for a photo pair)."""
        if counts is None:
            return
        if len(counts) > len(self.pixels):
            self.pixels = np.pad(self.pixels, (0, len(counts) - len(self.pixels)))
        self.pixels[: len(counts)] += counts
        self.void_pixels += void_pixels
        for class_id in np.flatnonzero(counts).tolist():
            listed = self.files.setdefault(class_id, [])
            if len(listed) < FILES_PER_MISSING_ID:
                listed.append(mask_file)

    def found(self) -> list[int]:
        return np.flatnonzero(self.pixels).tolist()


def class_record(tally: ClassTally, plan: LabelPlan, source: str) -> dict[str, Any]:
    """The manifest's ``palette``, ``class_names``, ``void_ids`` and per-class pixel shares.

    An explicit palette that lacks an id found in the data raises :class:`DataError` naming the ids and files.
    """
    found = tally.found()
    missing = [i for i in found if i not in plan.table.colours and i not in plan.void_ids]
    if plan.table.explicit and missing:
        listed = "; ".join(f"{i} in {', '.join(tally.files[i])}" for i in missing[:5])
        raise DataError(
            f"{source}: the data has class ids {missing} that `data.palette` does not define (ids "
            f"{sorted(plan.table.colours)}): {listed}; add them to the palette or use `auto`"
        )
    top = max([*found, *(plan.table.colours if plan.table.explicit else [])], default=0)
    total = int(tally.pixels.sum()) + tally.void_pixels
    return {
        "palette": plan.table.colour_lookup(top + 1, plan.void_ids).tolist(),
        "class_names": [plan.table.name(i) for i in range(top + 1)],
        "void_ids": list(plan.void_ids),
        "classes": [
            {"id": i, "name": plan.table.name(i), "pixel_share": int(tally.pixels[i]) / total if total else 0.0}
            for i in found
        ],
        "void_share": tally.void_pixels / total if total else 0.0,
    }
