"""What the demo learns about a generator's input: from the file's description, else from the prepared manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pix2pix.data.palette import CAR_CLASSES, CAR_PALETTE
from pix2pix.errors import DataError
from pix2pix.serving.description import model_description

SIZE = (64, 64)


def write_manifest(folder: Path, layout: str, void_ids: list[int] | None = None) -> Path:
    folder.mkdir(parents=True)
    label_layout = layout != "dayton4"
    (folder / "manifest.json").write_text(json.dumps({
        "layout": layout,
        "palette": [list(c) for c in CAR_PALETTE] if label_layout else None,
        "class_names": list(CAR_CLASSES) if label_layout else None,
        "void_ids": void_ids or [],
    }))  # fmt: skip
    return folder


def test_a_v1_generator_of_label_maps_takes_palette_and_names_from_the_manifest(tmp_path: Path) -> None:
    prepared = write_manifest(tmp_path / "prepared", "kaggle", void_ids=[4])
    described = model_description({"direction": "AtoB"}, SIZE, prepared)
    assert described.input_kind == "label_map"
    assert described.palette == CAR_PALETTE and described.class_names == CAR_CLASSES
    assert described.void_ids == (4,) and described.image_size == SIZE


@pytest.mark.parametrize(("layout", "direction"), [("kaggle", "BtoA"), ("dayton4", "AtoB")])
def test_photo_inputs_have_no_palette(tmp_path: Path, layout: str, direction: str) -> None:
    described = model_description({"direction": direction}, SIZE, write_manifest(tmp_path / "prepared", layout))
    assert described.input_kind == "photo" and described.palette is None and described.class_names is None


def test_the_generators_own_description_wins_without_any_manifest(tmp_path: Path) -> None:
    stored = {
        "input_kind": "label_map", "palette": [[0, 0, 0], [9, 9, 9]], "class_names": ["void", "thing"],
        "void_ids": [0], "image_size": [64, 64], "direction": "AtoB", "provenance": {"dataset": "x"},
    }  # fmt: skip
    described = model_description({"direction": "AtoB", "description": stored}, SIZE, tmp_path / "absent")
    assert described.palette == ((0, 0, 0), (9, 9, 9)) and described.class_names == ("void", "thing")
    assert described.void_ids == (0,)


def test_a_palette_without_names_gets_the_names_prepare_gives_unnamed_classes(tmp_path: Path) -> None:
    stored = {"input_kind": "label_map", "palette": [[0, 0, 0], [9, 9, 9]], "class_names": None, "void_ids": []}
    described = model_description({"direction": "AtoB", "description": stored}, SIZE, tmp_path / "absent")
    assert described.class_names == ("class_0", "class_1")


def test_no_description_and_no_manifest_names_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"absent/manifest.json: missing.*project folder"):
        model_description({"direction": "AtoB", "description": None}, SIZE, tmp_path / "absent")
