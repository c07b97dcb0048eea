"""The Cityscapes label definitions and the pix2pix paper's Cityscapes protocol: labelIds → the 19 trainIds.

The facts are the official table of cityscapesScripts (github.com/mcordts/cityscapesScripts,
``cityscapesscripts/helpers/labels.py``: name, id, trainId and colour of its 34 labels with ids 0..33, plus
'license plate', id -1, which the label images never hold). Its trainIds 0..18 are the 19 classes every
Cityscapes benchmark (and the pix2pix paper's FCN-score) scores; every other label has trainId 255, "ignore".
The license plate's trainId (-1 in the table) is ignore too. One stored copy of labels.py also lists lane-line
labels 34..45 with trainId 19; no published label image holds them, so they are not here and such an id is an
error (the file is no labelIds map).

The paper's Cityscapes A side is the colour trainId map (256×256): each trainId in its official colour,
ignore pixels black (:data:`~pix2pix.data.palette.VOID_COLOUR`, the 'unlabeled' colour of the table).

The official ``gtFine/test`` label maps carry no classes (the test labels are withheld: every pixel is
'unlabeled' or another ignore label), so pairs of the ``test`` folder are left out; ``val`` is the scored split.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from pix2pix.data.palette import ClassTable
from pix2pix.errors import DataError


class CityscapesLabel(NamedTuple):
    """One row of cityscapesScripts' ``labels``: ``id`` in the labelIds PNGs, ``train_id`` (255 = ignore)."""

    name: str
    id: int
    train_id: int
    colour: tuple[int, int, int]


IGNORE_TRAIN_ID = 255
# cityscapesscripts/helpers/labels.py, columns name, id, trainId, color (the license plate's trainId -1 → ignore).
LABELS: tuple[CityscapesLabel, ...] = (
    CityscapesLabel("unlabeled", 0, 255, (0, 0, 0)),
    CityscapesLabel("ego vehicle", 1, 255, (0, 0, 0)),
    CityscapesLabel("rectification border", 2, 255, (0, 0, 0)),
    CityscapesLabel("out of roi", 3, 255, (0, 0, 0)),
    CityscapesLabel("static", 4, 255, (0, 0, 0)),
    CityscapesLabel("dynamic", 5, 255, (111, 74, 0)),
    CityscapesLabel("ground", 6, 255, (81, 0, 81)),
    CityscapesLabel("road", 7, 0, (128, 64, 128)),
    CityscapesLabel("sidewalk", 8, 1, (244, 35, 232)),
    CityscapesLabel("parking", 9, 255, (250, 170, 160)),
    CityscapesLabel("rail track", 10, 255, (230, 150, 140)),
    CityscapesLabel("building", 11, 2, (70, 70, 70)),
    CityscapesLabel("wall", 12, 3, (102, 102, 156)),
    CityscapesLabel("fence", 13, 4, (190, 153, 153)),
    CityscapesLabel("guard rail", 14, 255, (180, 165, 180)),
    CityscapesLabel("bridge", 15, 255, (150, 100, 100)),
    CityscapesLabel("tunnel", 16, 255, (150, 120, 90)),
    CityscapesLabel("pole", 17, 5, (153, 153, 153)),
    CityscapesLabel("polegroup", 18, 255, (153, 153, 153)),
    CityscapesLabel("traffic light", 19, 6, (250, 170, 30)),
    CityscapesLabel("traffic sign", 20, 7, (220, 220, 0)),
    CityscapesLabel("vegetation", 21, 8, (107, 142, 35)),
    CityscapesLabel("terrain", 22, 9, (152, 251, 152)),
    CityscapesLabel("sky", 23, 10, (70, 130, 180)),
    CityscapesLabel("person", 24, 11, (220, 20, 60)),
    CityscapesLabel("rider", 25, 12, (255, 0, 0)),
    CityscapesLabel("car", 26, 13, (0, 0, 142)),
    CityscapesLabel("truck", 27, 14, (0, 0, 70)),
    CityscapesLabel("bus", 28, 15, (0, 60, 100)),
    CityscapesLabel("caravan", 29, 255, (0, 0, 90)),
    CityscapesLabel("trailer", 30, 255, (0, 0, 110)),
    CityscapesLabel("train", 31, 16, (0, 80, 100)),
    CityscapesLabel("motorcycle", 32, 17, (0, 0, 230)),
    CityscapesLabel("bicycle", 33, 18, (119, 11, 32)),
    CityscapesLabel("license plate", -1, 255, (0, 0, 142)),
)
# The 19 scored classes, in trainId order (0 road .. 18 bicycle).
TRAIN_LABELS: tuple[CityscapesLabel, ...] = tuple(
    sorted((label for label in LABELS if label.train_id != IGNORE_TRAIN_ID), key=lambda label: label.train_id)
)
TRAIN_CLASS_NAMES: tuple[str, ...] = tuple(label.name for label in TRAIN_LABELS)
TRAIN_PALETTE: tuple[tuple[int, int, int], ...] = tuple(label.colour for label in TRAIN_LABELS)
# What the label files' names end in: labelIds are mapped to trainIds, trainIds files are read as they are.
LABEL_IDS_SUFFIX = "_gtFine_labelIds"
TRAIN_IDS_SUFFIX = "_gtFine_trainIds"
WITHHELD_SPLIT = "test"
WITHHELD_REASON = (
    "official Cityscapes test labels are withheld (the public gtFine/test maps carry no classes, every pixel "
    "is 'unlabeled' or another ignore label): val is the scored split"
)
TRAIN_ID_NOTE = (
    "Cityscapes labelIds mapped to the 19 official trainIds (cityscapesScripts labels.py), the classes the "
    "pix2pix paper's FCN-score uses; every other label is ignore (255), painted black"
)


def _label_id_lookup() -> np.ndarray:
    """``(256,)`` int16: trainId of each labelId 0..33, -1 for a byte no label has."""
    lookup = np.full(256, -1, dtype=np.int16)
    for label in LABELS:
        if label.id >= 0:
            lookup[label.id] = label.train_id
    return lookup


LABEL_ID_TO_TRAIN_ID = _label_id_lookup()


def train_ids_of_label_ids(label_ids: np.ndarray, source: str) -> np.ndarray:
    """trainIds ``(H, W)`` uint8 (0..18, 255 = ignore) of a labelIds map ``(H, W)`` unsigned ints 0..33.

    Raises :class:`DataError` naming ``source`` and the ids when a value is no Cityscapes labelId (an
    instanceIds or colour file in its place).
    """
    top = int(label_ids.max()) if label_ids.size else 0
    lookup = LABEL_ID_TO_TRAIN_ID if top < len(LABEL_ID_TO_TRAIN_ID) else np.pad(
        LABEL_ID_TO_TRAIN_ID, (0, top + 1 - len(LABEL_ID_TO_TRAIN_ID)), constant_values=-1
    )
    train_ids = lookup[label_ids]
    if (train_ids < 0).any():
        unknown = np.unique(label_ids[train_ids < 0])[:8].tolist()
        raise DataError(
            f"{source}: ids {unknown} are no Cityscapes labelIds (0..{max(label.id for label in LABELS)}); give the "
            f"`*{LABEL_IDS_SUFFIX}.png` files, or set `data.palette`/`data.classes` to read the ids as they are"
        )
    return train_ids.astype(np.uint8)


def class_ids_of_label_file(ids: np.ndarray, source: str) -> np.ndarray:
    """The trainIds ``(H, W)`` uint8 of a ``*_gtFine_labelIds`` file's ids ``(H, W)``; any other file's ids as they are
    (``*_gtFine_trainIds`` files hold trainIds already). For every reader of label maps for a trainId model."""
    if Path(source).stem.endswith(LABEL_IDS_SUFFIX):
        return train_ids_of_label_ids(ids, source)
    return ids


def train_id_table() -> ClassTable:
    """The class table of the 19 trainIds: official colours and names, explicit (any other id is an error)."""
    return ClassTable(dict(enumerate(TRAIN_PALETTE)), dict(enumerate(TRAIN_CLASS_NAMES)), explicit=True)


def is_train_id_classes(class_names: object) -> bool:
    """Whether ``class_names`` (a list of names by class id) are exactly the 19 trainId classes, in order."""
    return isinstance(class_names, (list, tuple)) and tuple(class_names) == TRAIN_CLASS_NAMES
