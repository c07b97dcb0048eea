"""`pix2pix export-model`: ONNX and pt2 files that compute what the generator computes, and describe themselves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from pix2pix.cli import app
from pix2pix.errors import ConfigError
from pix2pix.training.checkpoint import save_atomic
from pix2pix.training.export import INPUT_NAME, export_generator
from pix2pix.training.generator_file import describe_generator, generator_payload
from pix2pix.training.model import InferenceMode, ModelConfig, build_generator, inference_view
from tests import builders

# The ONNX check of issue 20: onnxruntime within 1e-4 of PyTorch.
MAX_DIFF = 1e-4
SIZE = 64
# A car-data manifest as `prepare` writes it (pix2pix.data.prepare: layout, palette, class_names, void_ids).
MANIFEST = {"layout": "seed", "palette": [[0, 0, 0], [255, 0, 0], [0, 255, 0]], "class_names": ["bg", "car", "wheel"], "void_ids": []}


def generator_file(tmp_path: Path, mode: InferenceMode, ngf: int = 8, size: int = SIZE) -> tuple[Path, torch.nn.Module]:
    """A generator file whose batch norm has running statistics unlike any batch's (so the two modes differ)."""
    torch.manual_seed(0)
    cfg = ModelConfig(image_size=size, ngf=ngf, ndf=8)
    generator = build_generator(cfg)
    with torch.no_grad():
        for module in generator.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.3, 0.3)
                module.running_var.uniform_(0.5, 2.0)
    description = describe_generator(MANIFEST, "AtoB", size, "cars", "f00d", "6f2922b")
    path = tmp_path / "generator.pt"
    save_atomic(generator_payload(generator, cfg, "AtoB", 5, mode, description), path)
    return path, generator.eval()


def reference(generator: torch.nn.Module, batchnorm: str, images: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return inference_view(generator, InferenceMode(batchnorm, dropout=False))(torch.from_numpy(images)).numpy()


@pytest.mark.parametrize("batchnorm", ["running", "test_batch"])
def test_onnx_export_matches_pytorch_at_batch_1_and_3(tmp_path: Path, batchnorm: str) -> None:
    path, generator = generator_file(tmp_path, InferenceMode(batchnorm=batchnorm))
    export_generator(path, "onnx", tmp_path / "g.onnx")
    session = onnxruntime.InferenceSession(tmp_path / "g.onnx", providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for batch in (1, 3):
        images = rng.uniform(-1, 1, (batch, 3, SIZE, SIZE)).astype(np.float32)
        (output,) = session.run(None, {INPUT_NAME: images})
        assert output.shape == (batch, 3, SIZE, SIZE)
        assert np.abs(output - reference(generator, batchnorm, images)).max() <= MAX_DIFF
    other = "running" if batchnorm == "test_batch" else "test_batch"
    assert np.abs(output - reference(generator, other, images)).max() > 100 * MAX_DIFF  # the mode is really the one asked


def test_onnx_metadata_carries_the_description_and_the_test_time_mode(tmp_path: Path) -> None:
    path, _ = generator_file(tmp_path, InferenceMode(batchnorm="test_batch", dropout=True))
    result = CliRunner().invoke(app, ["export-model", "-m", str(path), "--format", "onnx", "-o", str(tmp_path / "g.onnx"), "--batchnorm", "running"])
    assert result.exit_code == 0, result.output
    props = {p.key: json.loads(p.value) for p in onnx.load(tmp_path / "g.onnx").metadata_props}
    assert props["palette"] == MANIFEST["palette"] and props["class_names"] == MANIFEST["class_names"]
    assert (props["input_kind"], props["direction"], props["image_size"]) == ("label_map", "AtoB", [SIZE, SIZE])
    assert props["provenance"] == {"dataset": "cars", "data_fingerprint": "f00d", "commit": "6f2922b"}
    assert props["test_time_mode"] == {"batchnorm": "running", "dropout": False, "batch_size": 1}  # overridden, dropout off
    assert props["model_config"]["ngf"] == 8


def test_pt2_export_loads_with_torch_alone_and_matches(tmp_path: Path) -> None:
    path, generator = generator_file(tmp_path, InferenceMode(batchnorm="test_batch"))
    export_generator(path, "pt2", tmp_path / "g.pt2")
    images = np.random.default_rng(1).uniform(-1, 1, (3, 3, SIZE, SIZE)).astype(np.float32)
    np.save(tmp_path / "x.npy", images)
    # A fresh interpreter in which importing pix2pix fails: only torch reads the file.
    script = (
        "import sys, json, numpy, torch; sys.modules['pix2pix'] = None; extra = {'pix2pix.json': ''}; "
        "program = torch.export.load('g.pt2', extra_files=extra); "
        "numpy.save('y.npy', program.module()(torch.from_numpy(numpy.load('x.npy'))).detach().numpy()); "
        "print(json.loads(extra['pix2pix.json'])['direction'])"
    )
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "AtoB"
    assert np.abs(np.load(tmp_path / "y.npy") - reference(generator, "test_batch", images)).max() <= MAX_DIFF


def test_batch_statistics_over_several_images_are_refused_naming_the_fix(tmp_path: Path) -> None:
    path, _ = generator_file(tmp_path, InferenceMode(batchnorm="test_batch", batch_size=4))
    with pytest.raises(ConfigError, match=r"generator\.pt records test-time batch norm over batches of 4 images.*--test-batch 1"):
        export_generator(path, "onnx", tmp_path / "g.onnx")
    assert not (tmp_path / "g.onnx").exists()


@pytest.mark.slow
def test_paper_width_256px_onnx_export_matches_pytorch(tmp_path: Path) -> None:
    # The paper's generator (ngf 64, 8 downsamplings at 256 px, 54.4 M parameters), in its test-time mode.
    path, generator = generator_file(tmp_path, InferenceMode(batchnorm="test_batch"), ngf=64, size=256)
    export_generator(path, "onnx", tmp_path / "g.onnx")
    session = onnxruntime.InferenceSession(tmp_path / "g.onnx", providers=["CPUExecutionProvider"])
    images = np.random.default_rng(2).uniform(-1, 1, (1, 3, 256, 256)).astype(np.float32)
    (output,) = session.run(None, {INPUT_NAME: images})
    assert np.abs(output - reference(generator, "test_batch", images)).max() <= MAX_DIFF


def test_the_readme_lines_run_the_onnx_file_with_onnxruntime_numpy_and_pillow_only(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Use the model elsewhere"):]
    code = section[section.index("```python\n") + len("```python\n"):section.index("```", section.index("```python\n") + 3)]
    assert len(code.strip().splitlines()) == 5
    path, generator = generator_file(tmp_path, InferenceMode(batchnorm="running"))
    export_generator(path, "onnx", tmp_path / "generator.onnx")
    mask = np.asarray(MANIFEST["palette"], dtype=np.uint8)[np.arange(SIZE * SIZE).reshape(SIZE, SIZE) // 700 % 3]
    (tmp_path / "mask.png").write_bytes(builders.png_bytes(mask))
    run = subprocess.run([sys.executable, "-c", "import sys; sys.modules['pix2pix'] = None\n" + code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    expected = reference(generator, "running", mask.transpose(2, 0, 1)[None].astype(np.float32) / 127.5 - 1)[0]
    expected = ((expected + 1) * 127.5).round().clip(0, 255).astype(np.uint8).transpose(1, 2, 0)
    assert np.abs(np.asarray(Image.open(tmp_path / "photo.png")).astype(int) - expected).max() <= 1


def test_an_unknown_format_is_one_red_line_naming_the_allowed_ones(tmp_path: Path) -> None:
    path, _ = generator_file(tmp_path, InferenceMode())
    result = CliRunner().invoke(app, ["export-model", "-m", str(path), "--format", "tflite", "-o", str(tmp_path / "g.tflite")])
    assert result.exit_code == 1 and result.output.strip() == "error: --format is 'tflite'; allowed: onnx, pt2"
