"""The demo's work, free of HTTP: decode an upload or a test pair into the page's input, and generate a photo.

Uploads are read by :func:`pix2pix.evaluation.translate.read_input` and resized as ``translate`` resizes them
(label maps nearest, photos bicubic), and the generator runs through ``translate_batches`` with the same seed
rule, so an uploaded file with seed ``s`` gives the pixels of ``pix2pix translate FILE --seed s``.
"""

from __future__ import annotations

import base64
import io
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from pix2pix.data.images import decode_rgb, resize_image
from pix2pix.data.store import Pairs
from pix2pix.errors import DataError
from pix2pix.evaluation.scoring import split_direction, translate_batches
from pix2pix.evaluation.translate import input_reading, read_input
from pix2pix.serving.description import ModelDescription
from pix2pix.serving.label_canvas import ID_DTYPE, LabelCanvas
from pix2pix.training.model import InferenceMode

# The largest seed torch.manual_seed takes.
MAX_SEED = 2**64 - 1
MAX_UPLOAD_BYTES = 32 * 1024 * 1024


class UploadTooLarge(DataError):
    """A posted body over :data:`MAX_UPLOAD_BYTES` (HTTP 413)."""


def check_upload_size(size: int, name: str) -> None:
    """Raise :class:`UploadTooLarge` for a body of ``size`` bytes over :data:`MAX_UPLOAD_BYTES`."""
    if size > MAX_UPLOAD_BYTES:
        raise UploadTooLarge(f"{name}: {size} bytes, more than the {MAX_UPLOAD_BYTES} a demo upload may have")


def png_bytes(image: np.ndarray) -> bytes:
    """``(H, W, 3)`` uint8 → PNG bytes (deterministic for the same pixels)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _data_url(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode()


@dataclass(frozen=True)
class Generated:
    """One generate: the output PNG at the model's size and the milliseconds the generator took."""

    png: bytes
    latency_ms: float


class Demo:
    """A loaded generator, its description, the test pairs offered as examples and its test-time mode.

    ``examples`` are pairs ``(N, 2, H, W, 3)`` uint8 at the model's size (or None). Generation is serialised by a
    lock: one model, one user, and a 2-core CPU gains nothing from two forward passes at once.
    """

    def __init__(
        self,
        generator: nn.Module,
        description: ModelDescription,
        mode: InferenceMode,
        device: torch.device,
        examples: Pairs | None = None,
    ) -> None:
        self.generator, self.description, self.mode, self.device = generator, description, mode, device
        self.examples = examples
        self.canvas = LabelCanvas(description) if description.input_kind == "label_map" else None
        self._lock = threading.Lock()
        if examples is not None and tuple(examples.shape[2:4]) != description.image_size:
            raise DataError(
                f"example pairs are {examples.shape[2]}x{examples.shape[3]} but the model works at "
                f"{description.image_size[0]}x{description.image_size[1]}: give --examples of the model's data"
            )

    def info(self) -> dict[str, Any]:
        """What the page needs to build itself (JSON-ready)."""
        height, width = self.description.image_size
        return {
            "input_kind": self.description.input_kind,
            "height": height,
            "width": width,
            "direction": self.description.direction,
            "test_time": self.mode.describe(),
            "classes": self.canvas.controls() if self.canvas else [],
            "colours": self.canvas.colours.tolist() if self.canvas else [],
            "eraser_id": self.canvas.eraser_id if self.canvas else None,
            "examples": 0 if self.examples is None else len(self.examples),
        }

    def _page_input(self, image: np.ndarray, source: str) -> dict[str, Any]:
        """An input at the model's size as the page holds it: class ids (label maps) or the photo."""
        if self.canvas:
            ids = self.canvas.ids_of(image, source)
            return {"ids": base64.b64encode(ids.tobytes()).decode(), "photo": None}
        return {"ids": None, "photo": _data_url(image)}

    def example(self, index: int) -> dict[str, Any]:
        """Test pair ``index``: its input (as :meth:`_page_input`) and its real output-domain image ``target``."""
        if self.examples is None or not 0 <= index < len(self.examples):
            count = 0 if self.examples is None else len(self.examples)
            raise DataError(f"example {index} does not exist: there are {count} test pairs (0–{count - 1})")
        inputs, targets = split_direction(np.asarray(self.examples[index : index + 1]), self.description.direction)
        return {**self._page_input(inputs[0], f"test pair {index}"), "target": _data_url(targets[0]), "index": index}

    def upload(self, data: bytes, name: str) -> dict[str, Any]:
        """Decode an uploaded file as ``translate`` does and resize it to the model's size (label maps nearest)."""
        check_upload_size(len(data), name)
        reading = input_reading(self.description.as_mapping(), "labels" if self.canvas else "photo", None)
        image, _ = read_input(data, name, reading, reading.coding())
        resample = Image.Resampling.NEAREST if self.canvas else Image.Resampling.BICUBIC
        resized = resize_image(image, self.description.image_size, "stretch", resample)
        return {**self._page_input(resized, name), "target": None, "index": None}

    def generate_from_ids(self, data: bytes, seed: int) -> Generated:
        """Generate from the page's class map: ``H * W`` little-endian uint16 ids, row-major."""
        if self.canvas is None:
            raise DataError("this generator's input is a photo: send a PNG photo, not a class map")
        height, width = self.description.image_size
        if len(data) != height * width * ID_DTYPE.itemsize:
            raise DataError(f"a class map of {height}x{width} is {height * width * ID_DTYPE.itemsize} bytes, got {len(data)}")
        ids = np.frombuffer(data, dtype=ID_DTYPE).reshape(height, width)
        return self.generate(self.canvas.paint(ids), seed)

    def generate_from_png(self, data: bytes, seed: int) -> Generated:
        """Generate from a photo at the model's size (what :meth:`upload` and :meth:`example` gave the page)."""
        image = decode_rgb(data, "the posted photo")
        if image.shape[:2] != self.description.image_size:
            raise DataError(f"the posted photo is {image.shape[0]}x{image.shape[1]}, the model takes "
                            f"{self.description.image_size[0]}x{self.description.image_size[1]}")
        return self.generate(image, seed)

    def generate(self, image: np.ndarray, seed: int) -> Generated:
        """Translate one ``(H, W, 3)`` uint8 input at the model's size with dropout noise from ``seed``."""
        if not 0 <= seed <= MAX_SEED:
            raise DataError(f"seed {seed} is outside 0..{MAX_SEED}")
        with self._lock:
            start = time.perf_counter()
            # A writable copy: torch warns on the read-only arrays that decoded images are.
            output = translate_batches(self.generator, np.array(image[None]), self.device, self.mode, seed)[0]
            latency_ms = (time.perf_counter() - start) * 1000
        return Generated(png_bytes(output), latency_ms)
