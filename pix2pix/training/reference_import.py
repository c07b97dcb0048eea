"""Import a U-Net generator saved by the authors' PyTorch code (junyanz/pytorch-CycleGAN-and-pix2pix).

Their ``latest_net_G.pth`` is the ``state_dict`` of ``UnetGenerator`` (``models/networks.py``): recursive
``UnetSkipConnectionBlock``s, each holding an ``nn.Sequential`` called ``model``, the next block inside it. With
``p(0) = "model.model."`` and ``p(l) = "model.model.1.model." + "3.model." * (l - 1)``, level ``l`` of a U-Net of
depth ``d`` (``unet_256``: 8 downsamplings, ``unet_128``: 7) holds:

- outermost (``l = 0``): ``p0`` + ``0`` down conv (``(ngf, in, 4, 4)``), ``3`` transposed up conv (always a bias);
- middle: ``1`` down conv, ``2`` down norm, ``3`` the next block, ``5`` up conv, ``6`` up norm (``7`` dropout);
- innermost (``l = d - 1``): ``1`` down conv, ``3`` up conv, ``4`` up norm.

Convs have a bias exactly when the norm is instance norm (``affine=False``: no weights; files of PyTorch < 0.4 may
still hold its ``running_mean``/``running_var``, which their loader deletes, as this one ignores), so the outermost
down conv's bias tells the norm. A middle block returns ``cat([x, block(x)])``: the skip comes *first*, where our
U-Net concatenates it last, so the input channels of every up conv but the innermost are swapped on import. Their
in-place LeakyReLU also rewrites the skip, which their ReLU then reads as ReLU(x): the values ours computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pix2pix.data.palette import palette_setting, read_class_names, resolve_classes
from pix2pix.errors import ConfigError, DataError
from pix2pix.training.generator_file import make_description
from pix2pix.training.model import KERNEL, ModelConfig, build_generator

DATA_PARALLEL_PREFIX = "module."
OUTER_PREFIX = "model.model."
# The tensors a conv or norm layer of theirs may hold.
TENSOR_NAMES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
# Their dropout: in the blocks built by `for i in range(num_downs - 5)`, i.e. levels 4 .. d - 2; ours with
# `dropout_placement: pytorch` in levels d - 4 .. d - 2 (three blocks): the same blocks for unet_256 only.
REFERENCE_DROPOUT_FROM_LEVEL = 4
SHOWN_KEYS = 4


@dataclass(frozen=True)
class ReferenceUNet:
    """What a reference state_dict says of its network: depth (downsamplings), ngf, norm, channels in and out."""

    depth: int
    ngf: int
    norm: str
    in_channels: int
    out_channels: int

    def dropout_levels(self) -> list[int]:
        """U-Net levels whose decoder block has dropout in the reference network (when trained with dropout)."""
        return list(range(REFERENCE_DROPOUT_FROM_LEVEL, self.depth - 1))


def dropout_note(generator: torch.nn.Module, unet: ReferenceUNet) -> str | None:
    """A note when our ``generator`` has dropout in other decoder levels than the reference network, else None."""
    with_dropout = [j for j, block in enumerate(generator.up_blocks) if any(isinstance(m, torch.nn.Dropout) for m in block)]
    ours = sorted(unet.depth - 1 - j for j in with_dropout)  # up block j mirrors level depth - 1 - j
    theirs = unet.dropout_levels()
    if ours == theirs:
        return None
    return (
        f"their unet_{2**unet.depth} has dropout at U-Net levels {theirs}, this import at {ours}: with dropout on, "
        "outputs differ in distribution; --no-dropout at test time computes theirs exactly"
    )


def prefix(level: int) -> str:
    """Key prefix of the ``nn.Sequential`` of U-Net level ``level`` (0 = outermost)."""
    return OUTER_PREFIX if level == 0 else "model.model.1.model." + "3.model." * (level - 1)


def read_reference_state(path: Path) -> dict[str, torch.Tensor]:
    """Load ``path`` as a tensor state_dict (``weights_only``), without a DataParallel/DDP ``module.`` prefix.

    DataError naming the file and what it holds when it is not a state_dict of tensors.
    """
    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as error:
        raise DataError(f"{path}: no such file; give the latest_net_G.pth of a pix2pix run") from error
    except Exception as error:  # torch raises many types for a foreign file
        raise DataError(
            f"{path}: not a PyTorch weights file ({type(error).__name__}); give a generator state_dict (*_net_G.pth)"
        ) from error
    if not isinstance(data, dict) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        found = f"a dict with keys {_shown(data)}" if isinstance(data, dict) else f"a {type(data).__name__}"
        raise DataError(f"{path}: not a state_dict of tensors (found {found}); give a generator state_dict (*_net_G.pth)")
    if all(key.startswith(DATA_PARALLEL_PREFIX) for key in data):
        data = {key[len(DATA_PARALLEL_PREFIX):]: value for key, value in data.items()}
    return data


def _shown(keys: Any) -> str:
    listed = sorted(map(str, keys))
    return ", ".join(listed[:SHOWN_KEYS]) + (f", … ({len(listed)} keys)" if len(listed) > SHOWN_KEYS else "")


def describe_reference(state: dict[str, torch.Tensor], path: Path) -> ReferenceUNet:
    """Infer the :class:`ReferenceUNet` of ``state``; DataError naming ``path`` and what was found otherwise."""
    if any(".conv_block." in key for key in state):
        raise DataError(
            f"{path}: a ResNet generator (keys such as {_shown(k for k in state if '.conv_block.' in k)}); only the "
            "U-Net generators (unet_256, unet_128) have our architecture"
        )
    if f"{OUTER_PREFIX}0.weight" not in state or f"{OUTER_PREFIX}3.weight" not in state:
        raise DataError(
            f"{path}: not a UnetGenerator state_dict (keys {_shown(state)}; expected {OUTER_PREFIX}0.weight ...): "
            "give the generator (*_net_G.pth), not the discriminator"
        )
    level = 1
    while f"{prefix(level)}3.weight" not in state:  # the innermost block's up conv sits at 3
        if f"{prefix(level)}5.weight" not in state:
            raise DataError(f"{path}: U-Net level {level} has neither a middle nor an innermost block ({prefix(level)}*)")
        level += 1
    first, last = state[f"{OUTER_PREFIX}0.weight"], state[f"{OUTER_PREFIX}3.weight"]
    if first.ndim != 4 or tuple(first.shape[2:]) != (KERNEL, KERNEL):
        raise DataError(f"{path}: {OUTER_PREFIX}0.weight has shape {tuple(first.shape)}, not a 4x4 conv")
    norm = "instance" if f"{OUTER_PREFIX}0.bias" in state else "batch"
    return ReferenceUNet(level + 1, int(first.shape[0]), norm, int(first.shape[1]), int(last.shape[1]))


def _level_keys(level: int, depth: int) -> dict[str, str]:
    """Their module index → ours, for the convs and norms of ``level`` (see the module notes)."""
    ours_up = f"up_blocks.{depth - 1 - level}"
    if level == 0:
        return {"0": "down_blocks.0.0", "3": f"{ours_up}.1"}
    if level == depth - 1:
        return {"1": f"down_blocks.{level}.1", "3": f"{ours_up}.1", "4": f"{ours_up}.2"}
    return {"1": f"down_blocks.{level}.1", "2": f"down_blocks.{level}.2", "5": f"{ours_up}.1", "6": f"{ours_up}.2"}


def convert_state(state: dict[str, torch.Tensor], unet: ReferenceUNet, path: Path) -> dict[str, torch.Tensor]:
    """Our U-Net's state_dict from theirs: keys renamed, up-conv input channels swapped (skip last), norm buffers
    completed (``num_batches_tracked`` 0 for files saved before it existed). DataError on keys left over."""
    converted: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for level in range(unet.depth):
        for theirs, ours in _level_keys(level, unet.depth).items():
            # Instance norm has nothing to load: statistics that old files keep for it are dropped, as their loader does.
            keep = unet.norm == "batch" or not ours.endswith(".2")
            for name in TENSOR_NAMES:
                key = f"{prefix(level)}{theirs}.{name}"
                if key in state:
                    used.add(key)
                    if keep:
                        converted[f"{ours}.{name}"] = state[key].clone()
            if keep and f"{ours}.running_mean" in converted:
                converted.setdefault(f"{ours}.num_batches_tracked", torch.tensor(0, dtype=torch.long))
            if level < unet.depth - 1 and ours.startswith("up_blocks") and ours.endswith(".1"):  # an up conv
                weight = converted[f"{ours}.weight"]
                half = weight.shape[0] // 2  # ConvTranspose2d weight: (in, out, k, k); theirs [skip, up], ours [up, skip]
                converted[f"{ours}.weight"] = torch.cat([weight[half:], weight[:half]]).contiguous()
    left = set(state) - used
    if left:
        raise DataError(
            f"{path}: keys no UnetGenerator of depth {unet.depth} has: {_shown(left)}; is it a modified network?"
        )
    return converted


def import_reference(
    path: Path, image_size: int | list[int] | None, dropout: bool, dropout_placement: str
) -> tuple[torch.nn.Module, ModelConfig, ReferenceUNet]:
    """Our generator holding the weights of the reference ``state_dict`` at ``path``.

    ``image_size`` defaults to ``2 ** depth`` (256 for unet_256); ``dropout`` says whether the network was trained
    with dropout (their default; ``--no_dropout`` trains without) and ``dropout_placement`` where (theirs:
    ``pytorch``). DataError naming the file when the weights do not fit.
    """
    path = Path(path)
    state = read_reference_state(path)
    unet = describe_reference(state, path)
    if (unet.in_channels, unet.out_channels) != (3, 3):
        raise DataError(
            f"{path}: a U-Net of {unet.in_channels} input and {unet.out_channels} output channels; this pipeline "
            "translates RGB images (3 and 3)"
        )
    cfg = ModelConfig(
        image_size=image_size or 2**unet.depth, ngf=unet.ngf, norm=unet.norm, dropout=0.5 if dropout else 0.0,
        dropout_placement=dropout_placement,
    )
    with torch.random.fork_rng(devices=[]):
        generator = build_generator(cfg)
    try:
        generator.load_state_dict(convert_state(state, unet, path))
    except RuntimeError as error:
        raise DataError(
            f"{path}: the weights do not fit a U-Net of depth {unet.depth}, ngf {unet.ngf}, {unet.norm} norm at "
            f"{cfg.image_size[0]}x{cfg.image_size[1]} ({str(error).splitlines()[0]}); give --image-size {2**unet.depth}"
        ) from error
    return generator.eval(), cfg, unet



def reference_description(
    *,
    input_kind: str,
    palette: str | None,
    classes: Path | None,
    void_ids: tuple[int, ...],
    image_size: tuple[int, int],
    direction: str,
    dataset: str | None,
) -> dict[str, Any]:
    """The ``description`` of an imported generator from what the person says (nothing of it is in their file).

    ``palette``: a palette file (YAML/JSON/CSV of id, name, colour) painting label-map inputs, required when
    ``input_kind`` is ``label_map``; ``classes``: a class-name file. ConfigError naming the option otherwise.
    """
    if input_kind == "label_map" and palette is None:
        raise ConfigError("--inputs label_map needs --palette FILE: the colours the network was trained to read")
    colours = names = None
    if palette is not None:
        table = resolve_classes(palette_setting(palette, "--palette"), classes)
        count = max(table.colours) + 1
        colours = table.colour_lookup(count, void_ids).tolist()
        names = [table.name(i) for i in range(count)]
    elif classes is not None:
        names = [name for _, name in sorted(read_class_names(classes).names.items())]
    return make_description(
        input_kind=input_kind, palette=colours, class_names=names, void_ids=void_ids, image_size=image_size,
        direction=direction, provenance={"dataset": dataset, "data_fingerprint": None, "commit": None},
    )
