"""Classes and their colours: the one place that maps label ids to RGB colours and names, and back.

- :data:`CAR_PALETTE`: the car-segmentation classes 0..4 = background, car body, wheel, lights, window, drawn
  black, red, green, blue and white (the seed archive's colours).
- :func:`colour_map`: the fixed colour of every id for ``data.palette: auto``: the Pascal VOC bit-interleaved
  colour map (id bits 0, 1, 2 go to the top bits of R, G, B, the next three one bit lower, ...), a bijection
  on 24-bit ids, with the car colours kept for ids 0..4 so that car data looks as it always did.
- :class:`ClassTable`: what a palette setting says (a list of colours, a YAML/JSON/CSV file of id, name and
  colour, or ``auto``) plus the class names a dataset ships (``classes.txt`` or a CSV).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pix2pix.choices import CLASS_FILE_SUFFIXES, PALETTE_AUTO, PALETTE_FILE_SUFFIXES
from pix2pix.errors import ConfigError, DataError

CAR_CLASSES: tuple[str, ...] = ("background", "car", "wheel", "lights", "window")
CAR_PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0),
    (255, 0, 0),
    (0, 255, 0),
    (0, 0, 255),
    (255, 255, 255),
)
# Void pixels (``data.void_ids``, transparent mask pixels) are painted this colour in A.
VOID_COLOUR = (0, 0, 0)
# Ids 256.. of the auto map hold the stand-in colours for classes that would be black beside void pixels.
SPARE_COLOURS_END = 512
Colour = tuple[int, int, int]


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


def colour_map(count: int) -> np.ndarray:
    """The ``auto`` colours of ids ``0..count-1`` as a ``(count, 3)`` uint8 array (VOC map, car colours for 0..4)."""
    ids = np.arange(count, dtype=np.int64)
    colours = np.zeros((count, 3), dtype=np.int64)
    remaining = ids.copy()
    for level in range(8):
        for channel in range(3):
            colours[:, channel] |= ((remaining >> channel) & 1) << (7 - level)
        remaining >>= 3
    head = min(count, len(CAR_PALETTE))
    colours[:head] = np.asarray(CAR_PALETTE[:head])
    return colours.astype(np.uint8)


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
            "extend `data.palette` in params.yaml (or use `auto`)"
        )
    return colours[index_mask.astype(np.intp)]


def snap_to_palette(color_mask: np.ndarray, palette: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray, int]:
    """Snap every pixel of a ``(H, W, 3)`` colour mask to its nearest palette colour, however far.

    Returns ``(snapped_rgb uint8 (H, W, 3), class_index uint8 (H, W), off_palette_pixel_count)``, where the
    count is the number of pixels that were not exactly a palette colour (e.g. blended by a resize).
    """
    colours = palette_array(palette)
    index, distance = nearest_colours(color_mask, colours)
    index_mask = index.astype(np.uint8)
    return colours[index_mask], index_mask, int(np.count_nonzero(distance))


def nearest_colours(color_mask: np.ndarray, colours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest of ``colours`` ``(K, 3)`` for every pixel of a ``(H, W, 3)`` uint8 image.

    Returns ``(index (H, W) int64 into colours, euclidean distance (H, W) float64)``. Distances are computed
    once per distinct colour, so a 1000x750 mask with a few hundred colours costs little.
    """
    pixels = color_mask.reshape(-1, 3).astype(np.int64)
    packed = (pixels[:, 0] << 16) | (pixels[:, 1] << 8) | pixels[:, 2]
    distinct, inverse = np.unique(packed, return_inverse=True)
    rgb = np.stack([(distinct >> 16) & 255, (distinct >> 8) & 255, distinct & 255], axis=1)
    squared = ((rgb[:, None, :] - colours[None, :, :].astype(np.int64)) ** 2).sum(axis=2)
    best = squared.argmin(axis=1)
    distance = np.sqrt(squared[np.arange(len(distinct)), best])
    shape = color_mask.shape[:2]
    return best[inverse].reshape(shape), distance[inverse].reshape(shape)


def default_name(class_id: int) -> str:
    """The name of a class nobody named: ``class_<id>``."""
    return f"class_{class_id}"


@dataclass(frozen=True)
class ClassTable:
    """What is known of the classes before the data is read.

    ``colours``/``names``: id → RGB and id → name from the palette setting and the class-name file.
    ``explicit``: the palette was given (a list or a file), so an id found in the data without a colour is an
    error; with ``auto`` every id takes its :func:`colour_map` colour.
    """

    colours: Mapping[int, Colour] = field(default_factory=dict)
    names: Mapping[int, str] = field(default_factory=dict)
    explicit: bool = False

    def colour_lookup(self, count: int, void_ids: Sequence[int] = ()) -> np.ndarray:
        """``(count, 3)`` uint8 colours of ids ``0..count-1``: the table's, else the ``auto`` colour map's.

        Void pixels are painted :data:`VOID_COLOUR` (black), so with ``void_ids`` no other class may be black, or
        the two could not be told apart in A (by the generator, or by the mask metrics): an ``auto`` class of that
        colour (id 0, the car background) takes the first colour of the map beyond id 255 that no class uses; a
        given one is an error.
        """
        lookup = colour_map(count)
        for class_id, colour in self.colours.items():
            if class_id < count:
                lookup[class_id] = colour
        clashing = [i for i in range(count) if i not in void_ids and tuple(lookup[i]) == VOID_COLOUR] if void_ids else []
        for class_id in clashing:
            if class_id in self.colours:
                raise DataError(
                    f"class {class_id} is given the void colour {VOID_COLOUR}, which void ids {list(void_ids)} are "
                    "painted: give it another colour in the palette"
                )
            lookup[class_id] = self._spare_colour()
        return lookup

    def _spare_colour(self) -> Colour:
        """The first ``auto`` colour beyond id 255 that is neither black, a car colour nor one of the table's."""
        taken = {VOID_COLOUR, *CAR_PALETTE, *self.colours.values()}
        return next(c for c in map(tuple, colour_map(SPARE_COLOURS_END)[256:].tolist()) if c not in taken)

    def decoding_colours(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids (K,), colours (K, 3))`` that colour-coded label images are read with.

        The table's own colours when it has any (a palette or a dataset CSV), else the first 256 colours of
        the ``auto`` map (a VOC mask saved as RGB reads back to its ids).
        """
        if self.colours:
            ids = np.array(sorted(self.colours), dtype=np.int64)
            return ids, np.array([self.colours[i] for i in ids], dtype=np.uint8).reshape(-1, 3)
        return np.arange(256, dtype=np.int64), colour_map(256)

    def name(self, class_id: int) -> str:
        return self.names.get(class_id, default_name(class_id))


def _colour(value: Any, where: str) -> Colour:
    """An RGB triple from ``[r, g, b]``, ``"r g b"``, ``"r,g,b"`` or ``"#rrggbb"``."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("#") and len(text) == 7:
            value = [int(text[i : i + 2], 16) for i in (1, 3, 5)]
        else:
            value = [part for part in text.replace(",", " ").split() if part]
    try:
        triple = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        triple = ()
    if len(triple) != 3 or not all(0 <= v <= 255 for v in triple):
        raise DataError(f"{where}: {value!r} is not an RGB colour; give [R, G, B] with values 0..255 or #rrggbb")
    return triple  # type: ignore[return-value]


def _entries_table(entries: Sequence[Any], where: str) -> ClassTable:
    """A table from a list whose items are ``[r, g, b]`` (id = position) or ``{id, name, colour}`` mappings."""
    colours: dict[int, Colour] = {}
    names: dict[int, str] = {}
    for position, entry in enumerate(entries):
        if isinstance(entry, Mapping):
            class_id = int(entry.get("id", position))
            colour = entry.get("colour", entry.get("color"))
            if entry.get("name") is not None:
                names[class_id] = str(entry["name"])
        else:
            class_id, colour = position, entry
        if colour is not None:
            colours[class_id] = _colour(colour, f"{where} entry {position}")
    if len(set(colours.values())) != len(colours):
        raise DataError(f"{where}: two classes share a colour; every class needs its own")
    return ClassTable(colours, names, explicit=True)


def _csv_rows(text: str, where: str) -> list[dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise DataError(f"{where}: no rows; expected a header such as `id,name,r,g,b` or `name,r,g,b`")
    return [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()} for row in rows]


def _csv_table(text: str, where: str) -> ClassTable:
    """A table from CSV rows with a header among ``id``, ``name`` (or ``class``), ``r,g,b`` or ``colour``."""
    entries = []
    for row in _csv_rows(text, where):
        entry: dict[str, Any] = {"name": row.get("name") or row.get("class") or None}
        if row.get("id"):
            entry["id"] = int(row["id"])
        if all(row.get(c) for c in "rgb"):
            entry["colour"] = [row["r"], row["g"], row["b"]]
        elif row.get("colour") or row.get("color"):
            entry["colour"] = row.get("colour") or row.get("color")
        entries.append(entry)
    return _entries_table(entries, where)


def read_palette_file(path: Path) -> ClassTable:
    """Read a palette file: YAML or JSON (a list of ``[r, g, b]`` or of ``{id, name, colour}``), or CSV."""
    path = Path(path)
    if path.suffix.lower() not in PALETTE_FILE_SUFFIXES:
        raise DataError(f"{path}: a palette file must end in {', '.join(PALETTE_FILE_SUFFIXES)}")
    try:
        text = path.read_text()
    except OSError as error:
        raise DataError(f"{path}: cannot read the palette file ({error})") from error
    if path.suffix.lower() == ".csv":
        return _csv_table(text, str(path))
    try:
        entries = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise DataError(f"{path}: not valid {path.suffix[1:].upper()} ({error})") from error
    if not isinstance(entries, list) or not entries:
        raise DataError(f"{path}: expected a list of [R, G, B] or of {{id, name, colour}} entries")
    return _entries_table(entries, str(path))


def read_class_names(path: Path) -> ClassTable:
    """Class names (and colours, when a CSV has them) from ``classes.txt`` (one name a line) or a CSV."""
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        raise DataError(f"{path}: cannot read the class names ({error})") from error
    if path.suffix.lower() == ".csv":
        table = _csv_table(text, str(path))
        return ClassTable(table.colours, table.names, explicit=False)
    names = [line.strip() for line in text.splitlines() if line.strip()]
    return ClassTable({}, dict(enumerate(names)), explicit=False)


def resolve_classes(palette: str | Sequence[Sequence[int]], classes: Path | None) -> ClassTable:
    """The :class:`ClassTable` of a palette setting (``auto``, a list, or a file) and a class-name file.

    Names from ``classes`` fill in where the palette names none; its colours count only under ``auto``.
    """
    if isinstance(palette, str) and palette == PALETTE_AUTO:
        table = ClassTable()
    elif isinstance(palette, (str, Path)):
        table = read_palette_file(Path(palette))
    else:
        table = ClassTable({i: tuple(int(v) for v in c) for i, c in enumerate(palette_array(palette).tolist())}, {}, True)
    if classes is None:
        return table
    shipped = read_class_names(classes)
    colours = table.colours if table.explicit else shipped.colours
    return ClassTable(colours, {**shipped.names, **table.names}, table.explicit)


# The settings as params.yaml and the CLI give them, checked by the same functions; ``name`` says where
# the value came from in the error (e.g. "params.yaml: `data.palette`" or "--palette").


def palette_setting(value: Any, name: str) -> str | tuple[Colour, ...]:
    """``auto``, a palette file path, or a list of ``[R, G, B]`` (as a tuple of tuples); :class:`ConfigError` otherwise."""
    if isinstance(value, str):
        if value == PALETTE_AUTO or Path(value).suffix.lower() in PALETTE_FILE_SUFFIXES:
            return value
        raise ConfigError(
            f"{name} is {value!r}; give `{PALETTE_AUTO}`, a file ending in {', '.join(PALETTE_FILE_SUFFIXES)}, "
            "or a list of [R, G, B]"
        )
    try:
        return tuple(tuple(int(v) for v in colour) for colour in palette_array(value).tolist())
    except (DataError, TypeError, ValueError) as error:
        raise ConfigError(f"{name}: {error}") from error


def void_ids_setting(value: Any, name: str) -> tuple[int, ...] | None:
    """``None`` (the layout's default), an id, a list of ids or a comma-separated string such as ``"11,255"``."""
    if value is None:
        return None
    items = value.replace(",", " ").split() if isinstance(value, str) else value if isinstance(value, list) else [value]
    try:
        ids = tuple(int(item) for item in items if not isinstance(item, bool))
    except (TypeError, ValueError):
        ids = ()
    if len(ids) != len(items) or any(i < 0 for i in ids):
        raise ConfigError(f"{name} is {value!r}; give null, [] or non-negative class ids such as [11] or [255]")
    return ids


def classes_setting(value: Any, name: str) -> str | None:
    """``None`` (the dataset's own class file, if any) or a path ending in ``.txt``/``.csv``."""
    if value is None or (isinstance(value, str) and Path(value).suffix.lower() in CLASS_FILE_SUFFIXES):
        return value
    raise ConfigError(f"{name} is {value!r}; give null or a classes.txt / CSV file of class names")
