"""The self-describing generator file (pix2pix.training.generator_file): format 2, and format 1 files still load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pix2pix.data.palette import CAR_PALETTE, colour_map
from pix2pix.errors import TrainingError
from pix2pix.training.checkpoint import save_atomic
from pix2pix.training.generator_file import (
    GENERATOR_FORMAT_VERSION,
    describe_generator,
    generator_payload,
    load_generator,
)
from pix2pix.training.loop import TrainConfig, train
from pix2pix.training.model import InferenceMode, ModelConfig, build_generator

CFG = ModelConfig(image_size=32, ngf=4, ndf=4)
# A manifest as `prepare` writes it for SegNet's CamVid with void id 11 (the keys describe_generator reads).
CAMVID_MANIFEST = {
    "layout": "camvid",
    "palette": colour_map(11).tolist(),
    "class_names": ["sky", "building", "pole", "road", "pavement", "tree", "sign", "fence", "car", "pedestrian", "bicyclist"],
    "void_ids": [11],
}


def saved(tmp_path: Path, payload: dict) -> Path:
    path = tmp_path / "generator.pt"
    save_atomic(payload, path)
    return path


def test_format_1_file_written_as_before_loads_with_no_description(tmp_path: Path) -> None:
    generator = build_generator(CFG)
    # Exactly what pix2pix.training.checkpoint.generator_payload wrote before format 2 (commit 6f2922b).
    old = {
        "format_version": 1,
        "model_config": CFG.to_dict(),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in generator.state_dict().items()},
        "direction": "AtoB",
        "inference": InferenceMode(batchnorm="running").to_dict(),
        "epoch": 7,
    }
    loaded, model_cfg, meta = load_generator(saved(tmp_path, old), "cpu")
    assert model_cfg == CFG
    assert meta == {"direction": "AtoB", "inference": InferenceMode(batchnorm="running"), "epoch": 7, "description": None}
    for key, value in generator.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_description_of_a_label_map_generator_round_trips(tmp_path: Path) -> None:
    description = describe_generator(CAMVID_MANIFEST, "AtoB", 32, "folder", "abc123", "6f2922b")
    assert description == {
        "input_kind": "label_map",
        "palette": CAMVID_MANIFEST["palette"],
        "class_names": CAMVID_MANIFEST["class_names"],
        "void_ids": [11],
        "image_size": [32, 32],
        "direction": "AtoB",
        "provenance": {"dataset": "folder", "data_fingerprint": "abc123", "commit": "6f2922b"},
    }
    payload = generator_payload(build_generator(CFG), CFG, "AtoB", 3, InferenceMode(), description)
    assert payload["format_version"] == GENERATOR_FORMAT_VERSION == 2
    _, _, meta = load_generator(saved(tmp_path, payload), "cpu")
    assert meta["description"] == description


def test_with_b_to_a_the_input_is_the_photo_and_the_palette_still_names_the_output_colours() -> None:
    description = describe_generator(CAMVID_MANIFEST, "BtoA", [32, 64], None, None, None)
    assert description["input_kind"] == "photo" and description["palette"] == CAMVID_MANIFEST["palette"]
    assert description["image_size"] == [32, 64]


def test_data_without_label_maps_describe_a_photo_input_with_no_palette() -> None:
    # Dayton pairs (aerial | street): prepare records palette None (pix2pix.data.prepare._prepare_folder).
    manifest = {"layout": "dayton2", "palette": None, "class_names": None, "void_ids": []}
    description = describe_generator(manifest, "AtoB", 32, "dayton", None, None)
    assert (description["input_kind"], description["palette"], description["class_names"], description["void_ids"]) == (
        "photo", None, None, []
    )


def test_a_broken_description_is_refused_naming_the_file_and_the_problem(tmp_path: Path) -> None:
    description = describe_generator({"layout": "seed", "palette": [list(c) for c in CAR_PALETTE]}, "AtoB", 32, None, None, None)
    description["input_kind"] = "mask"
    payload = generator_payload(build_generator(CFG), CFG, "AtoB", 1, InferenceMode(), description)
    with pytest.raises(TrainingError, match=r"generator\.pt: invalid description \(input_kind 'mask'"):
        load_generator(saved(tmp_path, payload), "cpu")


def test_a_newer_format_is_refused_saying_what_this_version_reads(tmp_path: Path) -> None:
    payload = generator_payload(build_generator(CFG), CFG, "AtoB", 1, InferenceMode(), None)
    payload["format_version"] = 3
    with pytest.raises(TrainingError, match=r"generator format 3, this version reads \[1, 2\]"):
        load_generator(saved(tmp_path, payload), "cpu")


def test_training_stores_the_description_it_is_given_in_every_generator_file(tmp_path: Path) -> None:
    description = describe_generator(CAMVID_MANIFEST, "AtoB", 32, "folder", "abc123", None)
    blocks = np.random.default_rng(0).integers(0, 2, (4, 4, 4, 3), dtype=np.uint8).repeat(8, axis=1).repeat(8, axis=2) * 255
    cfg = TrainConfig(model=ModelConfig(32, ngf=4, ndf=4), batch_size=4, epochs=1)
    result = train(cfg, np.stack([blocks, 255 - blocks], axis=1), tmp_path, description=description)
    _, _, meta = load_generator(result.generator_path, "cpu")
    assert meta["description"] == description
