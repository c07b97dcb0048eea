"""`translate_files` reads label-map inputs like `prepare` does and resizes them nearest, photos bicubic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from pix2pix.data.palette import CAR_PALETTE, ClassTable
from pix2pix.evaluation.translate import InputReading, translate_files
from pix2pix.training.model import InferenceMode
from tests import builders

SIZE = (32, 32)


class Recorder(nn.Module):
    """An identity generator that keeps what it was given, as uint8 ``(N, H, W, 3)``."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[np.ndarray] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.seen.append(((images + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
        return images


def translated_inputs(tmp_path: Path, files: dict[str, bytes], **options: object) -> np.ndarray:
    paths = []
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        paths.append(tmp_path / name)
    recorder = Recorder()
    options.setdefault("mode", InferenceMode())
    failures = translate_files(recorder, SIZE, paths, tmp_path / "out", torch.device("cpu"), **options)
    assert failures == []
    return np.concatenate(recorder.seen)


def test_colour_mask_input_is_resized_nearest_so_no_colour_is_invented(tmp_path: Path) -> None:
    mask = np.asarray(CAR_PALETTE, dtype=np.uint8)[builders.index_mask(0, (75, 100))]
    seen = translated_inputs(tmp_path, {"mask.png": builders.png_bytes(mask)})
    assert {tuple(c) for c in seen.reshape(-1, 3).tolist()} <= set(CAR_PALETTE)


def test_kaggle_rgba_id_mask_input_is_painted_with_the_palette(tmp_path: Path) -> None:
    ids = builders.index_mask(1, (64, 64))
    rgba = np.dstack([ids, ids, ids, np.full_like(ids, 255)])
    seen = translated_inputs(tmp_path, {"kaggle.png": builders.png_bytes(rgba)})
    assert {tuple(c) for c in seen.reshape(-1, 3).tolist()} == {tuple(c) for c in np.asarray(CAR_PALETTE)[np.unique(ids)].tolist()}


def test_photo_input_is_resized_bicubic(tmp_path: Path) -> None:
    photo = builders.real_photo(0, (75, 100))
    seen = translated_inputs(tmp_path, {"photo.png": builders.png_bytes(photo)})
    assert len(np.unique(seen.reshape(-1, 3), axis=0)) > 200  # a photo, not snapped or painted


def test_forced_label_input_uses_the_given_palette(tmp_path: Path) -> None:
    ids = builders.street_labels(0, (40, 40), classes=3)
    table = ClassTable({0: (10, 10, 10), 1: (200, 0, 100), 2: (0, 90, 180)}, {}, explicit=True)
    seen = translated_inputs(tmp_path, {"ids.png": builders.png_bytes(ids, "L")}, reading=InputReading("labels", table))
    assert {tuple(c) for c in seen.reshape(-1, 3).tolist()} == {(10, 10, 10), (200, 0, 100), (0, 90, 180)}
