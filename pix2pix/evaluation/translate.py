"""Translate a person's own image files with a trained generator.

By default images of any size are resized to the model's training size, translated, and the output resized back
to the input's size (bicubic), so outputs line up with their inputs: resizing keeps the global context and the
image statistics the U-Net was trained with. ``full_res`` instead runs the generator fully convolutionally at
the input's own size (see :func:`pad_to_multiple`), which keeps detail where the content is local.

How inputs are read comes from the generator file's ``description`` (:class:`InputReading`): label-map inputs
(colour masks, grey-coded or single-channel id masks) are read by the same decoder as ``prepare``
(:mod:`pix2pix.data.labels`), painted with the palette and void ids ``prepare`` used and resized NEAREST: a
bicubic resize would invent colours at class edges that no training mask ever had. Files of format 1 carry no
description: ``auto`` then reads an input as a label map when it decodes as one with at most
:data:`MAX_AUTO_CLASSES` ids, else as a photo, and paints with the ``auto`` palette.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from pix2pix.atomic import atomic_path
from pix2pix.errors import ConfigError, DataError
from pix2pix.evaluation.scoring import translate_batches
from pix2pix.training.model import InferenceMode, compute_batch_size
from pix2pix.data.cityscapes import class_ids_of_label_file, is_train_id_classes
from pix2pix.data.images import decode_rgb, resize_image
from pix2pix.data.labels import ColourCoding, LabelMap, decode_label_map, paint_labels
from pix2pix.data.palette import VOID_COLOUR, ClassTable
from pix2pix.data.sizes import unet_depth

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


@dataclass(frozen=True)
class InputReading:
    """How inputs are read: ``kind`` (``auto``, ``labels``, ``photo``), the class ``table`` that paints label maps,
    the ``void_ids`` painted :data:`~pix2pix.data.palette.VOID_COLOUR`, and ``closed``: the table holds every class
    the generator knows, so another id in an input is an error rather than a colour the generator never saw."""

    kind: str = "auto"
    table: ClassTable = field(default_factory=ClassTable)
    void_ids: tuple[int, ...] = ()
    closed: bool = False

    def coding(self) -> ColourCoding:
        """The colours that colour-coded inputs are read with: the table's, plus void black for the first void id
        (so a painted A side, as ``pix2pix export-pairs`` writes it, reads back to the same ids)."""
        coding = ColourCoding.of(self.table)
        if not self.void_ids or (coding.colours == VOID_COLOUR).all(axis=1).any():
            return coding
        colours = np.vstack([coding.colours, [VOID_COLOUR]]).astype(np.uint8)
        return ColourCoding(np.append(coding.ids, self.void_ids[0]), colours)


def input_reading(description: dict[str, Any] | None, kind: str | None, table: ClassTable | None) -> InputReading:
    """The reading a generator file's ``description`` asks for (see :mod:`pix2pix.training.generator_file`).

    ``kind`` (``auto``, ``labels``, ``photo``) and ``table`` override the description when given. Without a
    description (format 1 files): ``auto`` and the ``auto`` palette, as before descriptions existed.
    """
    if description is None:
        return InputReading(kind or "auto", table or ClassTable())
    described_kind = "labels" if description["input_kind"] == "label_map" else "photo"
    palette, names = description["palette"], description["class_names"] or []
    void_ids = tuple(description["void_ids"])
    if table is not None or palette is None:
        return InputReading(kind or described_kind, table or ClassTable(), void_ids)
    described = ClassTable({i: tuple(c) for i, c in enumerate(palette)}, dict(enumerate(names)), explicit=True)
    return InputReading(kind or described_kind, described, void_ids, closed=True)


def read_input(data: bytes, source: str, reading: InputReading, coding: ColourCoding) -> tuple[np.ndarray, bool]:
    """Decode one input to ``(H, W, 3)`` uint8 RGB; return it and whether it is a label map (painted as ``reading``
    says, ``coding`` = ``reading.coding()``). ``reading.kind``: ``labels`` (must decode as a label map), ``photo``, or
    ``auto`` (see the module notes)."""
    if reading.kind != "photo":
        try:
            labels = decode_label_map(data, source, coding)
        except DataError:
            if reading.kind == "labels":
                raise
        else:
            if is_train_id_classes([reading.table.name(i) for i in sorted(reading.table.colours)]):
                # A Cityscapes-trained model: a raw *_gtFine_labelIds map is read as prepare read it, as trainIds.
                labels.ids = class_ids_of_label_file(labels.ids, source)
            if reading.kind == "labels" or len(np.unique(labels.ids)) <= MAX_AUTO_CLASSES:
                if reading.closed:
                    _check_known_ids(labels, reading, source)
                return paint_labels(labels, reading.table, reading.void_ids)[0], True
    return decode_rgb(data, source), False


def _check_known_ids(labels: LabelMap, reading: InputReading, source: str) -> None:
    """DataError naming ``source`` when it has class ids the generator was not trained with."""
    known = set(reading.table.colours) | set(reading.void_ids)
    unknown = sorted(set(np.unique(labels.ids).tolist()) - known)
    if unknown:
        raise DataError(
            f"{source}: class ids {unknown[:10]} are not among the model's classes 0–{max(reading.table.colours)} "
            f"(void {list(reading.void_ids)}); give label maps of the classes it was trained on"
        )


def pad_to_multiple(image: np.ndarray, multiple: int) -> np.ndarray:
    """Pad ``(H, W, 3)`` uint8 at the bottom and right to the next multiple of ``multiple`` on each side.

    Mirror (numpy ``reflect``) padding: the border continues the image's own content, so no hard edge appears for
    the convolutions to answer, label maps keep only their classes (zeros would paint class 0 or void), and batch
    statistics of test-time batch norm stay close to the image's own. numpy repeats the mirror for pads longer
    than the image.
    """
    height, width = image.shape[:2]
    pad_h, pad_w = -height % multiple, -width % multiple
    return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect") if pad_h or pad_w else image


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
    reading: InputReading | None = None,
    full_res: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> list[Failure]:
    """Write one translated PNG per readable input into ``out_dir``; return the inputs that failed.

    ``image_size`` ``(H, W)`` is the model's training size; ``reading`` says how inputs are read and painted
    (default: :class:`InputReading`, i.e. detected, ``auto`` palette). ``mode`` is the test-time mode (batch
    statistics are those of each ``mode.batch_size`` consecutive readable inputs); ``batch_size`` inputs are read
    and translated at a time (rounded down to a multiple of ``mode.batch_size``). With ``full_res`` each input runs
    alone at its own size, mirror-padded to a size the U-Net takes and cropped back (so ``mode`` must not ask for
    batch statistics over several images). Each output is written atomically; an unreadable input is reported,
    never half-written.
    """
    reading = reading or InputReading()
    coding = reading.coding()
    stems = [Path(p).stem for p in paths]
    if len(set(stems)) != len(stems):
        raise DataError("two inputs share a file name (stem); their outputs would overwrite each other")
    if full_res and mode.batchnorm == "test_batch" and mode.batch_size > 1:
        raise ConfigError(
            f"full resolution translates each image alone, but the test-time mode asks for the batch statistics of "
            f"{mode.batch_size} images: use --test-batch 1 or --batchnorm running"
        )
    batch_size = compute_batch_size(mode, batch_size)
    # The U-Net halves the image `depth` times: each side must be a multiple of 2**depth (pix2pix.data.sizes).
    multiple = 2 ** unet_depth(tuple(image_size))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    failures: list[Failure] = []
    for start in range(0, len(paths), batch_size):
        batch_paths, originals, resized = [], [], []
        for path in paths[start : start + batch_size]:
            try:
                image, is_labels = read_input(Path(path).read_bytes(), str(path), reading, coding)
            except (DataError, OSError) as error:
                failures.append(Failure(Path(path), str(error)))
                continue
            resample = Image.Resampling.NEAREST if is_labels else Image.Resampling.BICUBIC
            if full_res:
                resized.append(pad_to_multiple(image, multiple))
            else:
                resized.append(resize_image(image, image_size, "stretch", resample))
            originals.append(image)
            batch_paths.append(Path(path))
        if batch_paths:
            if full_res:  # one image per forward pass: the sizes differ
                outputs = [
                    translate_batches(generator, image[None], device, mode, seed + start + i, 1)[0]
                    for i, image in enumerate(resized)
                ]
            else:
                outputs = translate_batches(generator, np.stack(resized), device, mode, seed + start, batch_size)
            for path, original, output in zip(batch_paths, originals, outputs):
                _write_output(output_path(out_dir, path), output, original.shape[:2], full_res)
        if progress:
            progress(min(start + batch_size, len(paths)), len(paths))
    return failures


def _write_output(path: Path, output: np.ndarray, size_hw: tuple[int, int], full_res: bool) -> None:
    """Save ``output`` (uint8 ``(h, w, 3)``) at ``size_hw`` as a PNG, atomically: the padded full-resolution output
    is cropped back, a resized one resized back (bicubic)."""
    if full_res:
        restored = output[: size_hw[0], : size_hw[1]]
    else:
        restored = resize_image(output, size_hw, "stretch", Image.Resampling.BICUBIC)
    with atomic_path(path) as tmp:
        Image.fromarray(restored).save(tmp, format="PNG")
