"""`pix2pix translate` reads its inputs as the generator file describes them, never from the working folder.

Issue 20: on SegNet's CamVid with void id 11 and a class_dict.csv, the generator must be fed exactly the A side
`prepare` stored for a test label map, and give the pipeline's output for that pair.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from pix2pix.cli import app
from pix2pix.data.images import resize_image
from pix2pix.data.palette import VOID_COLOUR
from pix2pix.data.prepare import PrepareConfig, prepare_pairs
from pix2pix.data.store import PAIRS_FILE, open_pairs, read_manifest
from pix2pix.evaluation.scoring import translate_batches
from pix2pix.evaluation.translate import input_reading, translate_files
from pix2pix.training.checkpoint import save_atomic
from pix2pix.training.generator_file import describe_generator, generator_payload, load_generator
from pix2pix.training.model import InferenceMode, ModelConfig, build_generator
from pix2pix.training.pixels import to_pixels
from tests import builders

SIZE = 32
TEST_MAP = "testannot/0001TP_test0000.png"  # the file name pattern of builders.camvid_folder
# SegNet's CamVid classes 0..10 and 11 = unlabelled (datasets.md), with the colours of the SegNet tutorial's
# CamVid colour table (Sky 128,128,128 ... Bicyclist 0,128,192, Unlabelled 0,0,0).
CAMVID_CLASSES = (
    ("Sky", (128, 128, 128)), ("Building", (128, 0, 0)), ("Pole", (192, 192, 128)), ("Road", (128, 64, 128)),
    ("Pavement", (60, 40, 222)), ("Tree", (128, 128, 0)), ("SignSymbol", (192, 128, 128)), ("Fence", (64, 64, 128)),
    ("Car", (64, 0, 128)), ("Pedestrian", (64, 64, 0)), ("Bicyclist", (0, 128, 192)), ("Unlabelled", (0, 0, 0)),
)


class Recorder(nn.Module):
    """An identity generator that keeps what it was given, as uint8 ``(N, H, W, 3)``."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[np.ndarray] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.seen.append(to_pixels(images).permute(0, 2, 3, 1).numpy())
        return images


def camvid_model(tmp_path: Path, with_colours: bool) -> tuple[Path, Path, np.ndarray]:
    """CamVid folder → prepare (void 11) → a tiny generator file describing it; returns (folder, file, stored A)."""
    folder = builders.camvid_folder(tmp_path / "CamVid", {"train": 2, "test": 1}, size_hw=(36, 48))
    rows = [f"{name},{r},{g},{b}" if with_colours else name for name, (r, g, b) in CAMVID_CLASSES]
    (folder / "class_dict.csv").write_text(("name,r,g,b\n" if with_colours else "name\n") + "\n".join(rows) + "\n")
    prepare_pairs(folder, tmp_path / "prepared", PrepareConfig(image_size=(SIZE, SIZE), void_ids=(11,)), workers=1)
    manifest = read_manifest(tmp_path / "prepared")
    stored_a = open_pairs(tmp_path / "prepared" / PAIRS_FILE)[manifest["names"].index("test/0001TP_test0000"), 0]
    description = describe_generator(manifest, "AtoB", SIZE, "folder", manifest["source_sha256"], None)
    torch.manual_seed(0)
    cfg = ModelConfig(image_size=SIZE, ngf=4, ndf=4)
    path = tmp_path / "generator.pt"
    save_atomic(generator_payload(build_generator(cfg), cfg, "AtoB", 1, InferenceMode(), description), path)
    return folder, path, np.array(stored_a)


@pytest.mark.parametrize("with_colours", [True, False], ids=["class_dict_with_colours", "class_dict_names_only"])
def test_translate_feeds_the_generator_exactly_the_a_side_prepare_stored(tmp_path: Path, with_colours: bool) -> None:
    folder, model, stored_a = camvid_model(tmp_path, with_colours)
    _, model_cfg, meta = load_generator(model, "cpu")
    recorder = Recorder()
    failures = translate_files(
        recorder, model_cfg.image_size, [folder / TEST_MAP], tmp_path / "out", torch.device("cpu"),
        mode=meta["inference"], reading=input_reading(meta["description"], None, None),
    )
    assert failures == []
    assert recorder.seen[0][0].tobytes() == stored_a.tobytes()
    # Sky (id 0) is no void: it keeps its own colour, and the void pixels (id 11) are black.
    assert VOID_COLOUR in {tuple(c) for c in stored_a.reshape(-1, 3).tolist()}
    assert tuple(meta["description"]["palette"][0]) != VOID_COLOUR
    assert meta["description"]["class_names"][:2] == ["Sky", "Building"]


def test_translate_command_gives_the_pipeline_output_for_the_stored_pair(tmp_path: Path) -> None:
    folder, model, stored_a = camvid_model(tmp_path, with_colours=False)
    result = CliRunner().invoke(app, ["translate", "-m", str(model), "-o", str(tmp_path / "out"), str(folder / TEST_MAP)])
    assert result.exit_code == 0, result.output
    generator, _, meta = load_generator(model, "cpu")
    # The pipeline's output for the pair (seed 0, the recorded mode), resized back to the label map's 48x36.
    expected = translate_batches(generator, stored_a[None], torch.device("cpu"), meta["inference"], seed=0)[0]
    expected = resize_image(expected, (36, 48), "stretch", Image.Resampling.BICUBIC)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "0001TP_test0000.png")), expected)


def test_a_label_map_with_a_class_the_model_never_saw_is_refused_naming_the_ids(tmp_path: Path) -> None:
    _, model, _ = camvid_model(tmp_path, with_colours=False)
    ids = builders.street_labels(0, (36, 48), classes=14)  # ids 12 and 13 are not CamVid's
    (tmp_path / "odd.png").write_bytes(builders.png_bytes(ids, "L"))
    result = CliRunner().invoke(app, ["translate", "-m", str(model), "-o", str(tmp_path / "out"), str(tmp_path / "odd.png")])
    assert result.exit_code == 1
    assert "odd.png: class ids [12, 13] are not among the model's classes 0–10 (void [11])" in result.output


def test_evaluate_reads_a_folder_as_the_model_file_says(tmp_path: Path) -> None:
    folder, model, _ = camvid_model(tmp_path, with_colours=False)
    scores = []
    for data in (folder, tmp_path / "prepared" / PAIRS_FILE):  # the raw folder, and the pairs the pipeline prepared
        out = tmp_path / f"{data.name}.json"
        result = CliRunner().invoke(app, ["evaluate", str(data), "-m", str(model), "--params", str(tmp_path / "none.yaml"), "-o", str(out)])
        assert result.exit_code == 0, result.output
        scores.append(json.loads(out.read_text()))
    assert scores[0]["l1"] == scores[1]["l1"] and scores[0]["eval_images"] == 3
