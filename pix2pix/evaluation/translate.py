"""Translate a person's own image files with a trained generator.

Images of any size are resized to the model's training size, translated, and the output resized back to
the input's size (bicubic), so outputs line up with their inputs. Resizing (not tiling) keeps the
global context the U-Net was trained with; for images far larger than the training size, train at a
larger ``image_size`` instead.
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


@dataclass(frozen=True)
class Failure:
    """An input that could not be translated, and why."""

    path: Path
    reason: str


def output_path(out_dir: Path, source: Path) -> Path:
    """``out_dir/<stem>.png``: outputs are always PNG so nothing is lost to JPEG compression."""
    return Path(out_dir) / f"{source.stem}.png"


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
    progress: Callable[[int, int], None] | None = None,
) -> list[Failure]:
    """Write one translated PNG per readable input into ``out_dir``; return the inputs that failed.

    ``mode`` is the test-time mode (batch statistics are those of each ``mode.batch_size`` consecutive readable
    inputs); ``batch_size`` inputs are read and translated at a time (rounded down to a multiple of
    ``mode.batch_size``).
    Each output is written atomically; an unreadable input is reported, never half-written.
    """
    stems = [Path(p).stem for p in paths]
    if len(set(stems)) != len(stems):
        raise DataError("two inputs share a file name (stem); their outputs would overwrite each other")
    batch_size = compute_batch_size(mode, batch_size)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    failures: list[Failure] = []
    for start in range(0, len(paths), batch_size):
        batch_paths, originals = [], []
        for path in paths[start : start + batch_size]:
            try:
                originals.append(decode_rgb(Path(path).read_bytes(), str(path)))
                batch_paths.append(Path(path))
            except (DataError, OSError) as error:
                failures.append(Failure(Path(path), str(error)))
        if batch_paths:
            resized = np.stack([resize_image(image, image_size, "stretch", Image.Resampling.BICUBIC) for image in originals])
            outputs = translate_batches(generator, resized, device, mode, seed + start, batch_size)
            for path, original, output in zip(batch_paths, originals, outputs):
                restored = resize_image(output, original.shape[:2], "stretch", Image.Resampling.BICUBIC)
                with atomic_path(output_path(out_dir, path)) as tmp:
                    Image.fromarray(restored).save(tmp, format="PNG")
        if progress:
            progress(min(start + batch_size, len(paths)), len(paths))
    return failures
