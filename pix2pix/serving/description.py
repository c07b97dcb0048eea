"""What a generator's input looks like: label maps of known classes, or photos.

The self-describing generator file (format v2) carries this as ``meta["description"]``; a v1 file does not, and
then the pipeline's ``data/prepared/manifest.json`` tells it. :func:`model_description` is the one place that
chooses between the two, so dropping the fallback later touches nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pix2pix.data.layouts import LABEL_MAP_LAYOUTS
from pix2pix.data.palette import default_name
from pix2pix.data.store import read_manifest
from pix2pix.errors import DataError

INPUT_KINDS = ("label_map", "photo")


@dataclass(frozen=True)
class ModelDescription:
    """The generator's input domain.

    ``input_kind``: ``"label_map"`` (the input is a class map painted with ``palette``) or ``"photo"``.
    ``palette``: ``[R, G, B]`` per class id (index = id, 0..255 each), ``class_names`` one name per id; both
    ``None`` for photo inputs. ``void_ids``: ids painted black in training inputs. ``image_size``: ``(H, W)``.
    """

    input_kind: str
    palette: tuple[tuple[int, int, int], ...] | None
    class_names: tuple[str, ...] | None
    void_ids: tuple[int, ...]
    image_size: tuple[int, int]
    direction: str

    def __post_init__(self) -> None:
        if self.input_kind not in INPUT_KINDS:
            raise DataError(f"generator input kind {self.input_kind!r} is unknown; expected one of {INPUT_KINDS}")
        if self.input_kind == "label_map" and (not self.palette or len(self.palette) != len(self.class_names or ())):
            raise DataError("a label-map generator needs one palette colour and one class name per class id")

    def as_mapping(self) -> dict[str, Any]:
        """The generator file's ``description`` keys that say how inputs are read (for ``translate``'s reader)."""
        return {
            "input_kind": self.input_kind, "palette": self.palette, "class_names": self.class_names,
            "void_ids": list(self.void_ids),
        }


def model_description(meta: Mapping[str, Any], image_size: tuple[int, int], prepared_dir: Path) -> ModelDescription:
    """The description stored in the generator's ``meta``, else the one ``prepared_dir/manifest.json`` implies.

    ``meta`` is what :func:`pix2pix.training.generator_file.load_generator` returns; ``image_size`` the model's.
    Raises :class:`DataError` when the file carries no description and the manifest is missing.
    """
    stored = meta.get("description")
    if stored:
        return _from_mapping(stored, image_size, meta["direction"])
    try:
        manifest = read_manifest(prepared_dir)
    except DataError as error:
        raise DataError(
            f"the generator file does not say what its input is, and {error}. Run `pix2pix demo` from the "
            "project folder the model was trained in, or retrain to get a self-describing generator.pt"
        ) from error
    # The stored pairs are A|B with A = the label map for label layouts; BtoA feeds the photo B.
    labels_in = manifest["layout"] in LABEL_MAP_LAYOUTS and meta["direction"] == "AtoB"
    return _from_mapping(
        {
            "input_kind": "label_map" if labels_in else "photo",
            "palette": manifest.get("palette") if labels_in else None,
            "class_names": manifest.get("class_names") if labels_in else None,
            "void_ids": manifest.get("void_ids") or [],
        },
        image_size,
        meta["direction"],
    )


def _from_mapping(stored: Mapping[str, Any], image_size: tuple[int, int], direction: str) -> ModelDescription:
    palette, names = stored.get("palette"), stored.get("class_names")
    if palette and not names:  # a palette without names: classes are called as prepare calls unnamed ones
        names = [default_name(i) for i in range(len(palette))]
    return ModelDescription(
        input_kind=stored["input_kind"],
        palette=tuple(tuple(int(c) for c in colour) for colour in palette) if palette else None,
        class_names=tuple(str(name) for name in names) if names else None,
        void_ids=tuple(int(i) for i in stored.get("void_ids") or ()),
        image_size=(int(image_size[0]), int(image_size[1])),
        direction=direction,
    )
