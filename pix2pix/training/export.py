"""Export a generator file for use without this package: ONNX (any ONNX runtime) or ``pt2`` (torch alone).

The exported network is the generator as it runs at test time: dropout off (an export is deterministic), batch norm
as the file records (``running``: PyTorch's eval mode; ``test_batch``: each image normalised with its own
statistics, train-mode batch norm at batch 1 without touching the running averages) unless overridden. It takes
``input`` float32 ``(N, 3, H, W)`` RGB in [-1, 1] (``pixel / 127.5 - 1``) at the model's ``(H, W)`` and gives
``output`` in the same layout and range; ``N`` is dynamic.

The generator file's description (input kind, palette, class names, void ids, size, direction, provenance), the
test-time mode and the model config travel with it: each as a JSON string in the ONNX model's ``metadata_props``, and
as one JSON object in the ``pt2`` archive's extra file :data:`PT2_METADATA_FILE`.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pix2pix.atomic import atomic_path
from pix2pix.choices import EXPORT_FORMATS
from pix2pix.errors import ConfigError, TrainingError
from pix2pix.training.generator_file import load_generator
from pix2pix.training.model import InferenceMode, ModelConfig, inference_view

INPUT_NAME, OUTPUT_NAME = "input", "output"
PT2_METADATA_FILE = "pix2pix.json"
TENSOR_LAYOUT = "input and output: float32 (N, 3, H, W), RGB in [-1, 1] (pixel / 127.5 - 1), N dynamic"


@dataclass(frozen=True)
class Exported:
    """What :func:`export_generator` wrote: the file, its test-time mode and the metadata it carries."""

    path: Path
    mode: InferenceMode
    metadata: dict[str, Any]


def export_mode(recorded: InferenceMode, batchnorm: str | None, source: Path) -> InferenceMode:
    """The test-time mode of an export: ``recorded`` (the file's) with ``batchnorm`` if given, dropout off.

    A test batch of several images cannot be expressed with a dynamic batch axis (the grouping would depend on
    ``N``), so ``test_batch`` is exported for one image at a time only: ConfigError naming ``source`` otherwise.
    """
    mode = InferenceMode(batchnorm=batchnorm or recorded.batchnorm, dropout=False, batch_size=recorded.batch_size)
    if mode.batchnorm == "test_batch" and mode.batch_size != 1:
        raise ConfigError(
            f"{source} records test-time batch norm over batches of {mode.batch_size} images, which an export with a "
            "dynamic batch cannot express: export with --batchnorm running, or --test-batch 1 (each image's own statistics)"
        )
    return mode


def export_metadata(model_cfg: ModelConfig, meta: dict[str, Any], mode: InferenceMode) -> dict[str, Any]:
    """What an export carries: the description's keys (format 1 files: direction and size only, the rest null), the
    test-time mode, the model config and the tensor layout, as JSON-ready builtins."""
    described = meta["description"] or {
        "input_kind": None, "palette": None, "class_names": None, "void_ids": [], "provenance": None,
    }
    values = {
        **described,
        "direction": meta["direction"],
        "image_size": list(model_cfg.image_size),
        "test_time_mode": mode.to_dict(),
        "model_config": model_cfg.to_dict(),
        "tensor_layout": TENSOR_LAYOUT,
    }
    return dict(sorted(values.items()))


def export_generator(
    model_path: Path, fmt: str, out: Path, batchnorm: str | None = None, test_batch: int | None = None
) -> Exported:
    """Export the generator file ``model_path`` as ``fmt`` (``onnx`` | ``pt2``) to ``out``, written atomically.

    ``batchnorm``/``test_batch`` override the recorded test-time mode (see :func:`export_mode`).
    """
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"--format is {fmt!r}; allowed: {', '.join(EXPORT_FORMATS)}")
    generator, model_cfg, meta = load_generator(model_path, "cpu")
    recorded = meta["inference"]
    if test_batch is not None:
        recorded = InferenceMode(recorded.batchnorm, recorded.dropout, test_batch)
    mode = export_mode(recorded, batchnorm, Path(model_path))
    view = inference_view(generator, mode)
    metadata = export_metadata(model_cfg, meta, mode)
    # Batch 2 when tracing, so that the batch axis is not specialised to 1.
    example = torch.zeros(2, model_cfg.in_channels, *model_cfg.image_size)
    dynamic = ({0: torch.export.Dim("batch")},)
    with atomic_path(out) as tmp:
        if fmt == "onnx":
            _save_onnx(view, example, dynamic, metadata, tmp)
        else:
            program = torch.export.export(view, (example,), dynamic_shapes=dynamic)
            torch.export.save(program, tmp, extra_files={PT2_METADATA_FILE: json.dumps(metadata)})
    return Exported(Path(out), mode, metadata)


def _save_onnx(view: nn.Module, example: torch.Tensor, dynamic: tuple, metadata: dict[str, Any], path: Path) -> None:
    """torch.onnx's dynamo exporter, one self-contained file with each ``metadata`` value as a JSON string in
    ``metadata_props`` (ONNX metadata values are strings)."""
    chatter = io.StringIO()  # the exporter prints its progress; keep a command's output to its own lines
    try:
        with contextlib.redirect_stdout(chatter):
            program = torch.onnx.export(
                view, (example,), dynamo=True, dynamic_shapes=dynamic,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], verbose=False,
            )
    except Exception as error:  # the exporter raises many types; its own message says which step failed
        raise TrainingError(f"ONNX export failed ({error}); export --format pt2 instead, or report it") from error
    program.model.metadata_props.update({key: json.dumps(value) for key, value in metadata.items()})
    program.save(path, external_data=False)
