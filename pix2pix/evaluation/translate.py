"""Translate a person's own image files with a trained generator.

Images of any size are resized to the model's training size, translated, and the output resized back to
the input's size (bicubic), so outputs line up with their inputs. Resizing (not tiling) keeps the
global context the U-Net was trained with; for images far larger than the training size, train at a
larger ``image_size`` instead.

Label-map inputs (colour masks, grey-coded or single-channel id masks) are read by the same decoder as
``prepare`` (:mod:`pix2pix.data.labels`), painted with the same palette and resized NEAREST: a bicubic resize
would invent colours at class edges that no training mask ever had. ``input_kind="auto"`` reads an input as
a label map when it decodes as one with at most :data:`MAX_AUTO_CLASSES` ids, else as a photo.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from pix2pix.atomic import atomic_path
from pix2pix.errors import DataError
from pix2pix.evaluation.scoring import translate_batches
from pix2pix.training.model import InferenceMode, compute_batch_size
from pix2pix.data.images import decode_rgb, resize_image
from pix2pix.data.labels import ColourCoding, decode_label_map, paint_labels
from pix2pix.data.palette import ClassTable

# A label map holds few classes; a greyscale photo decodes as "grey-coded ids" too, but with hundreds of them.
MAX_AUTO_CLASSES = 64


@dataclass(frozen=True)
class Failure:
    """An input that could not be translated, and why."""

    path: Path
    reason: str


def output_path(out_dir: Path, source: Path) -> Path:
    """``out_dir/<stem>.png``: outputs are always PNG so nothing is lost to JPEG compression."""
    return Path(out_dir) / f"{source.stem}.png"


def read_input(data: bytes, source: str, input_kind: str, table: ClassTable, coding: ColourCoding) -> tuple[np.ndarray, bool]:
    """Decode one input to ``(H, W, 3)`` uint8 RGB; return it and whether it is a label map (painted by ``table``).

    ``input_kind``: ``labels`` (must decode as a label map), ``photo``, or ``auto`` (see the module notes).
    """
    if input_kind != "photo":
        try:
            labels = decode_label_map(data, source, coding)
        except DataError:
            if input_kind == "labels":
                raise
        else:
            if input_kind == "labels" or len(np.unique(labels.ids)) <= MAX_AUTO_CLASSES:
                return paint_labels(labels, table, ())[0], True
    return decode_rgb(data, source), False


def translate_files(
    generator: nn.Module,
    image_size: tuple[int, int],
    paths: Sequence[Path],
    out_dir: Path,
    device: torch.device,
    *,
    mode: InferenceMode,
    batch_size: int = 8,
    seed: int = 0,
    input_kind: str = "auto",
    classes: ClassTable | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Failure]:
    """Write one translated PNG per readable input into ``out_dir``; return the inputs that failed.

    ``classes`` paints label-map inputs (default: the ``auto`` palette that ``prepare`` uses by default).
    ``mode`` is the test-time mode (batch statistics are those of each ``mode.batch_size`` consecutive readable
    inputs); ``batch_size`` inputs are read and translated at a time (rounded down to a multiple of
    ``mode.batch_size``).
    Each output is written atomically; an unreadable input is reported, never half-written.
    """
    table = classes or ClassTable()
    coding = ColourCoding.of(table)
    stems = [Path(p).stem for p in paths]
    if len(set(stems)) != len(stems):
        raise DataError("two inputs share a file name (stem); their outputs would overwrite each other")
    batch_size = compute_batch_size(mode, batch_size)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    failures: list[Failure] = []
    for start in range(0, len(paths), batch_size):
        batch_paths, originals, resized = [], [], []
        for path in paths[start : start + batch_size]:
            try:
                image, is_labels = read_input(Path(path).read_bytes(), str(path), input_kind, table, coding)
            except (DataError, OSError) as error:
                failures.append(Failure(Path(path), str(error)))
                continue
            resample = Image.Resampling.NEAREST if is_labels else Image.Resampling.BICUBIC
            resized.append(resize_image(image, image_size, "stretch", resample))
            originals.append(image)
            batch_paths.append(Path(path))
        if batch_paths:
            resized = np.stack(resized)
            outputs = translate_batches(generator, resized, device, mode, seed + start, batch_size)
            for path, original, output in zip(batch_paths, originals, outputs):
                restored = resize_image(output, original.shape[:2], "stretch", Image.Resampling.BICUBIC)
                with atomic_path(output_path(out_dir, path)) as tmp:
                    Image.fromarray(restored).save(tmp, format="PNG")
        if progress:
            progress(min(start + batch_size, len(paths)), len(paths))
    return failures
