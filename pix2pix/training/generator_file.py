"""The on-disk format of ``generator.pt``: a trained generator that describes itself.

A ``torch.save`` file of plain containers and tensors only (loads with ``torch.load(weights_only=True)``), holding::

    format_version  GENERATOR_FORMAT_VERSION (2; files of format 1 still load)
    model_config    ModelConfig.to_dict(): the architecture, so the module can be rebuilt as trained
    state_dict      CPU, contiguous tensors
    direction       "AtoB" | "BtoA"
    inference       InferenceMode.to_dict(): the test-time mode the pipeline scored with (the consumers' default)
    epoch           completed epochs
    description     what a consumer needs to feed the generator, without the folder that trained it (v2; None
                    when unknown), see :func:`describe_generator`

``description`` keys: ``input_kind`` ("label_map" when the generator's input is the colour label map that
``prepare`` painted, else "photo"); ``palette`` (``[[r, g, b], ...]``, index = class id: exactly the colours
``prepare`` painted the data's label maps with, whichever side is the input; None when the data has no label
map); ``class_names`` (list or None); ``void_ids`` (painted :data:`~pix2pix.data.palette.VOID_COLOUR`);
``image_size`` ``[H, W]``; ``direction``; ``provenance`` ``{"dataset", "data_fingerprint", "commit"}`` (each str
or None).

Format 1 files have no ``description`` (it loads as None; one they hold anyway is read); the oldest of them hold
``inference_dropout_default`` instead of ``inference`` and were scored with running statistics. Training's
snapshots (:mod:`pix2pix.training.snapshots`) are generator files with keys of their own beside these.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pix2pix.choices import DIRECTIONS, GENERATOR_INPUT_KINDS
from pix2pix.data.layouts import LABEL_MAP_LAYOUTS
from pix2pix.data.palette import palette_array
from pix2pix.data.sizes import parse_image_size
from pix2pix.errors import ConfigError, DataError, TrainingError
from pix2pix.training.checkpoint import save_atomic
from pix2pix.training.model import InferenceMode, ModelConfig, build_generator

GENERATOR_FORMAT_VERSION = 2
# Format 1: the same keys less ``description``.
READABLE_VERSIONS = (1, GENERATOR_FORMAT_VERSION)
GENERATOR_KEYS = frozenset({"format_version", "model_config", "state_dict", "direction", "epoch"})
DESCRIPTION_KEYS = frozenset({"input_kind", "palette", "class_names", "void_ids", "image_size", "direction", "provenance"})
PROVENANCE_KEYS = frozenset({"dataset", "data_fingerprint", "commit"})


def describe_generator(
    manifest: dict[str, Any],
    direction: str,
    image_size: int | Sequence[int],
    dataset: str | None,
    data_fingerprint: str | None,
    commit: str | None,
) -> dict[str, Any]:
    """The ``description`` of a generator trained on the prepared data of ``manifest`` (see the module notes).

    ``manifest`` is ``data/prepared/manifest.json`` (or the split's, which copies these keys) as
    :func:`pix2pix.data.store.read_manifest` reads it: a ``layout`` in :data:`~pix2pix.data.layouts.LABEL_MAP_LAYOUTS`
    means A is a colour label map, so the input is a label map with ``AtoB`` and the photo with ``BtoA``. Raises
    ConfigError on an unknown direction or image size.
    """
    label_data = manifest.get("layout") in LABEL_MAP_LAYOUTS and manifest.get("palette") is not None
    return make_description(
        input_kind="label_map" if label_data and direction == "AtoB" else "photo",
        palette=manifest["palette"] if label_data else None,
        class_names=manifest.get("class_names") if label_data else None,
        void_ids=(manifest.get("void_ids") or []) if label_data else [],
        image_size=image_size,
        direction=direction,
        provenance={"dataset": dataset, "data_fingerprint": data_fingerprint, "commit": commit},
    )


def make_description(
    *,
    input_kind: str,
    palette: Sequence[Sequence[int]] | None,
    class_names: Sequence[str] | None,
    void_ids: Sequence[int],
    image_size: int | Sequence[int],
    direction: str,
    provenance: dict[str, str | None],
) -> dict[str, Any]:
    """A ``description`` from its parts as builtins (see the module notes); ConfigError on an unusable part."""
    description = {
        "input_kind": input_kind,
        "palette": None if palette is None else [[int(v) for v in colour] for colour in palette],
        "class_names": list(class_names) if class_names else None,
        "void_ids": [int(i) for i in void_ids],
        "image_size": list(parse_image_size(image_size)),
        "direction": direction,
        "provenance": dict(provenance),
    }
    problem = _description_problem(description)
    if problem:
        raise ConfigError(f"generator description: {problem}")
    return description


def generator_payload(
    generator: nn.Module,
    model_cfg: ModelConfig,
    direction: str,
    epoch: int,
    inference: InferenceMode,
    description: dict[str, Any] | None,
) -> dict[str, Any]:
    """The ``generator.pt`` content for ``generator`` (weights copied to CPU, contiguous).

    ``description`` comes from :func:`describe_generator` (None: unknown, consumers fall back to guessing).
    """
    state = {key: value.detach().cpu().contiguous() for key, value in generator.state_dict().items()}
    return {
        "format_version": GENERATOR_FORMAT_VERSION,
        "model_config": model_cfg.to_dict(),
        "state_dict": state,
        "direction": direction,
        "inference": inference.to_dict(),
        "epoch": epoch,
        "description": description,
    }


def copy_with_inference(source: Path, target: Path, inference: InferenceMode) -> None:
    """Write the generator file ``source`` (a snapshot, say) to ``target``, recording ``inference`` as its test-time
    mode: the mode its scores were computed with, which ``translate`` and ``evaluate`` then use by default."""
    payload = torch.load(source, map_location="cpu", weights_only=True)
    payload["inference"] = inference.to_dict()
    save_atomic(payload, target)


def load_generator(path: Path, device: torch.device | str) -> tuple[nn.Module, ModelConfig, dict[str, Any]]:
    """Rebuild the generator saved in ``generator.pt`` on ``device``, ready for inference.

    Returns ``(module, model_config, meta)`` where ``meta`` holds ``direction``, ``inference`` (an
    :class:`InferenceMode`), ``epoch`` and ``description`` (a dict, or None for format 1 files). The module is in
    eval mode: run it through :func:`pix2pix.training.model.inference_view` with the mode wanted. Raises
    DataError when the file is missing and TrainingError when it is unreadable or does not fit its own config.
    """
    path = Path(path)
    data = _read(path)
    try:
        model_cfg = ModelConfig.from_dict(data["model_config"])
    except (ConfigError, TypeError) as error:
        raise TrainingError(f"{path}: invalid model_config ({error}); retrain") from error
    # Building initialises weights from the global RNG; keep the caller's random stream untouched.
    with torch.random.fork_rng(devices=[]):
        generator = build_generator(model_cfg)
    try:
        generator.load_state_dict(data["state_dict"])
    except RuntimeError as error:
        raise TrainingError(f"{path}: weights do not fit its model_config ({error}); retrain") from error
    generator.to(device).eval()
    meta = {
        "direction": data["direction"],
        "inference": _stored_inference(data, path),
        "epoch": data["epoch"],
        "description": _stored_description(data, path),
    }
    return generator, model_cfg, meta


def _read(path: Path) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` a generator file of a readable format; DataError/TrainingError otherwise."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as error:
        raise DataError(f"{path}: missing; train a model first (`dvc repro train`)") from error
    except Exception as error:  # torch raises many types for a truncated or foreign file
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
        raise TrainingError(f"{path}: not a readable generator file ({first_line}); delete it or retrain") from error
    if not isinstance(data, dict) or not GENERATOR_KEYS <= set(data):
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise TrainingError(
            f"{path}: not a pix2pix generator file (found {keys}); a state_dict of the authors' code imports with "
            "`pix2pix import-generator`"
        )
    if data["format_version"] not in READABLE_VERSIONS:
        raise TrainingError(
            f"{path}: generator format {data['format_version']!r}, this version reads {list(READABLE_VERSIONS)}; "
            "update pix2pix-pipeline or retrain"
        )
    return data


def _stored_inference(data: dict[str, Any], path: Path) -> InferenceMode:
    """The recorded test-time mode; older files (dropout flag only) were evaluated with running statistics."""
    try:
        if "inference" in data:
            return InferenceMode(**data["inference"])
        return InferenceMode(batchnorm="running", dropout=bool(data["inference_dropout_default"]), batch_size=1)
    except (ConfigError, TypeError, KeyError) as error:
        raise TrainingError(f"{path}: invalid test-time mode ({error}); retrain") from error


def _stored_description(data: dict[str, Any], path: Path) -> dict[str, Any] | None:
    """The ``description`` of a format 2 file, checked (None when absent: format 1, or unknown at save time)."""
    description = data.get("description")
    if description is None:
        return None
    problem = _description_problem(description)
    if problem:
        raise TrainingError(f"{path}: invalid description ({problem}); re-import or retrain the generator")
    return description


def _description_problem(description: Any) -> str | None:
    """What is wrong with a stored description, or None."""
    if not isinstance(description, dict) or set(description) != DESCRIPTION_KEYS:
        found = sorted(description) if isinstance(description, dict) else type(description).__name__
        return f"keys {found}, expected {sorted(DESCRIPTION_KEYS)}"
    if description["input_kind"] not in GENERATOR_INPUT_KINDS:
        return f"input_kind {description['input_kind']!r} is not one of {', '.join(GENERATOR_INPUT_KINDS)}"
    if description["direction"] not in DIRECTIONS:
        return f"direction {description['direction']!r} is not one of {', '.join(DIRECTIONS)}"
    if description["input_kind"] == "label_map" and description["palette"] is None:
        return "a label-map input without a palette"
    provenance = description["provenance"]
    if not isinstance(provenance, dict) or set(provenance) != PROVENANCE_KEYS:
        return f"provenance {provenance!r} needs the keys {sorted(PROVENANCE_KEYS)}"
    try:
        parse_image_size(list(description["image_size"]))
        if description["palette"] is not None:
            palette_array(description["palette"])
    except (ConfigError, DataError, TypeError) as error:
        return str(error)
    return None
