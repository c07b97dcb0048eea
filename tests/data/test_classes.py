"""Class tables: the `auto` colour map, palette files (YAML/JSON/CSV), class-name files, and the settings' checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pix2pix.data.palette import (
    CAR_PALETTE,
    classes_setting,
    colour_map,
    palette_setting,
    read_palette_file,
    resolve_classes,
    void_ids_setting,
)
from pix2pix.errors import ConfigError, DataError


def test_auto_colour_map_keeps_car_colours_then_follows_the_voc_map() -> None:
    colours = colour_map(256)
    assert [tuple(c) for c in colours[:5].tolist()] == list(CAR_PALETTE)
    # Pascal VOC bit-interleaved map: 5 = (128, 0, 128), 11 = (192, 128, 0), 15 = (192, 128, 128), 255 = (224, 224, 192).
    assert colours[5].tolist() == [128, 0, 128] and colours[11].tolist() == [192, 128, 0]
    assert colours[15].tolist() == [192, 128, 128] and colours[255].tolist() == [224, 224, 192]
    assert len({tuple(c) for c in colour_map(4096).tolist()}) == 4096


def test_palette_yaml_file_with_ids_names_and_colours(tmp_path: Path) -> None:
    path = tmp_path / "camvid.yaml"
    path.write_text("- {id: 0, name: sky, colour: [128, 128, 128]}\n- {id: 3, name: road, color: '#804080'}\n")
    table = read_palette_file(path)
    assert table.explicit and table.colours == {0: (128, 128, 128), 3: (128, 64, 128)}
    assert table.name(3) == "road" and table.name(1) == "class_1"


def test_palette_json_list_of_colours_uses_the_position_as_id(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps([[0, 0, 0], [10, 20, 30]]))
    assert read_palette_file(path).colours == {0: (0, 0, 0), 1: (10, 20, 30)}


def test_palette_csv_with_name_and_rgb_columns(tmp_path: Path) -> None:
    # The Kaggle CamVid copy ships class_dict.csv as `name,r,g,b`.
    path = tmp_path / "class_dict.csv"
    path.write_text("name,r,g,b\nAnimal,64,128,64\nArchway,192,0,128\n")
    table = read_palette_file(path)
    assert table.colours == {0: (64, 128, 64), 1: (192, 0, 128)} and table.names == {0: "Animal", 1: "Archway"}


def test_palette_file_with_a_shared_colour_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("id,name,colour\n0,a,#000000\n1,b,0 0 0\n")
    with pytest.raises(DataError, match="p.csv: two classes share a colour"):
        read_palette_file(path)


def test_classes_txt_names_the_ids_in_line_order_and_auto_keeps_the_colour_map(tmp_path: Path) -> None:
    path = tmp_path / "classes.txt"
    path.write_text("sky\nbuilding\n\npole\n")
    table = resolve_classes("auto", path)
    assert [table.name(i) for i in range(4)] == ["sky", "building", "pole", "class_3"]
    assert not table.explicit and table.colour_lookup(3).tolist() == [list(c) for c in CAR_PALETTE[:3]]


def test_settings_accept_what_params_and_cli_give_and_refuse_the_rest() -> None:
    assert palette_setting("auto", "x") == "auto" and palette_setting("p.csv", "x") == "p.csv"
    assert palette_setting([[0, 0, 0], [255, 0, 0]], "x") == ((0, 0, 0), (255, 0, 0))
    assert void_ids_setting(None, "x") is None and void_ids_setting([], "x") == ()
    assert void_ids_setting("11,255", "x") == (11, 255) and void_ids_setting(11, "x") == (11,)
    assert classes_setting(None, "x") is None and classes_setting("classes.txt", "x") == "classes.txt"
    with pytest.raises(ConfigError, match="--palette is 'rainbow'; give `auto`"):
        palette_setting("rainbow", "--palette")
    with pytest.raises(ConfigError, match=r"--void-ids is '-1'"):
        void_ids_setting("-1", "--void-ids")
    with pytest.raises(ConfigError, match="`data.classes` is 'names.json'"):
        classes_setting("names.json", "`data.classes`")


def test_colour_lookup_of_an_explicit_table_covers_ids_beyond_it() -> None:
    table = resolve_classes([[1, 2, 3], [4, 5, 6]], None)
    lookup = table.colour_lookup(4)
    np.testing.assert_array_equal(lookup[:2], [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(lookup[2:], colour_map(4)[2:])
