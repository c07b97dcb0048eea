"""The pipeline's parameters as typed, validated objects.

``params.yaml`` is read by ``stages/`` and the CLI only; they hand the plain dict to
:func:`validate_params`, which rejects a bad value with one line naming the key and the allowed values
*before* any work starts. Library functions take the small dataclasses below, never the dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from pix2pix.errors import ConfigError
from pix2pix.palette import palette_array
from pix2pix.sizes import parse_image_size

DATASETS = ("sample", "cars", "dayton", "folder")
DIRECTIONS = ("AtoB", "BtoA")
RESIZE_POLICIES = ("stretch", "pad", "crop")
SPLIT_MODES = ("auto", "random", "official", "location")
SAMPLE_LAYOUTS = ("seed", "kaggle")
PANEL_ORDERS = ("auto", "street_aerial", "aerial_street")
NORMS = ("batch", "instance")
DROPOUT_PLACEMENTS = ("paper", "pytorch")
GAN_LOSSES = ("vanilla", "lsgan", "hinge")
AMP_MODES = ("auto", "bf16", "fp16", "off")
INCEPTION_CHOICES = ("auto", "full", "trunk")


def lookup(params: Mapping[str, Any], dotted_key: str) -> Any:
    """Return ``params["a"]["b"]`` for ``"a.b"``; :class:`ConfigError` naming the key if it is missing."""
    node: Any = params
    for part in dotted_key.split("."):
        if not isinstance(node, Mapping):
            raise ConfigError(f"params.yaml: missing key `{dotted_key}`")
        try:
            node = node[part]  # item access, so a stage's DeclaredParams can name an undeclared key
        except KeyError:
            raise ConfigError(f"params.yaml: missing key `{dotted_key}`") from None
    return node


def flatten_keys(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"ngf": 8}}`` → ``{"model.ngf": 8}`` (MLflow params, config comparisons)."""
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        if isinstance(value, Mapping):
            flat.update(flatten_keys(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _choice(params: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = lookup(params, key)
    if value not in allowed:
        raise ConfigError(f"params.yaml: `{key}` is {value!r}; allowed: {', '.join(allowed)}")
    return value


def _number(params: Mapping[str, Any], key: str, kind: type, low: float, high: float | None = None) -> Any:
    value = lookup(params, key)
    ok_type = isinstance(value, (int, float)) if kind is float else isinstance(value, int)
    if isinstance(value, bool) or not ok_type or value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ConfigError(f"params.yaml: `{key}` is {value!r}; it must be {kind.__name__} {bound}")
    return kind(value)


def check_source(value: Any, key: str) -> str | None:
    """Accept ``None``, an http(s):// or file:// URL, or a local path; reject other URL schemes."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"params.yaml: `{key}` must be a URL or a local path, got {value!r}")
    scheme = urlparse(value).scheme.lower()
    # A one-letter scheme is a Windows drive letter, i.e. a local path.
    if scheme and len(scheme) > 1 and scheme not in ("http", "https", "file"):
        raise ConfigError(
            f"params.yaml: `{key}` is {value!r}; it must be an http(s):// or file:// URL or a local path"
        )
    return value


@dataclass(frozen=True)
class PrepareConfig:
    """How raw images become stored pairs."""

    image_size: tuple[int, int]
    resize_policy: str = "stretch"
    palette: tuple[tuple[int, int, int], ...] = ()
    min_valid_pairs: int = 1
    panel_order: str = "auto"


@dataclass(frozen=True)
class SplitConfig:
    """How prepared pairs are divided into train and test."""

    seed: int
    test_fraction: float
    mode: str = "auto"


def validate_params(params: Mapping[str, Any]) -> None:
    """Check every key of the whole params file; raise :class:`ConfigError` on the first bad one."""
    dataset = _choice(params, "dataset", DATASETS)
    _choice(params, "direction", DIRECTIONS)
    parse_image_size(lookup(params, "image_size"))
    _number(params, "batch_size", int, 1)
    _number(params, "epochs", int, 1)
    _number(params, "lr", float, 1e-12, 1.0)
    _number(params, "lambda_l1", float, 0)
    _number(params, "seed", int, 0)
    _choice(params, "data.resize_policy", RESIZE_POLICIES)
    _choice(params, "data.split_mode", SPLIT_MODES)
    _number(params, "data.test_fraction", float, 0.01, 0.9)
    _number(params, "data.min_valid_pairs", int, 1)
    try:
        palette_array(lookup(params, "data.palette"))
    except Exception as error:  # palette_array raises DataError; here it is a params problem
        raise ConfigError(f"params.yaml: `data.palette`: {error}") from error
    _number(params, "data.sample.n_pairs", int, 4)
    _choice(params, "data.sample.layout", SAMPLE_LAYOUTS)
    _choice(params, "data.panel_order", PANEL_ORDERS)
    for name in ("cars", "dayton", "folder"):
        check_source(lookup(params, f"data.{name}.source"), f"data.{name}.source")
    _number(params, "model.ngf", int, 1)
    _number(params, "model.ndf", int, 1)
    _choice(params, "model.norm", NORMS)
    _number(params, "model.n_layers_d", int, 1, 8)
    _choice(params, "model.dropout_placement", DROPOUT_PLACEMENTS)
    _choice(params, "model.gan_loss", GAN_LOSSES)
    _number(params, "train.epochs_decay", int, 0)
    _number(params, "train.beta1", float, 0.0, 0.999)
    _choice(params, "train.amp", AMP_MODES)
    _number(params, "train.log_every_steps", int, 1)
    _number(params, "train.sample_count", int, 1)
    for flag in ("train.jitter", "train.flip", "train.compile", "eval.inference_dropout", "mlflow.enabled"):
        if not isinstance(lookup(params, flag), bool):
            raise ConfigError(f"params.yaml: `{flag}` is {lookup(params, flag)!r}; allowed: true, false")
    _number(params, "eval.every", int, 1)
    _number(params, "eval.num_images", int, 0)
    _choice(params, "eval.inception", INCEPTION_CHOICES)
    if lookup(params, "data.split_mode") in ("official", "location") and dataset != "dayton":
        raise ConfigError(
            f"params.yaml: `data.split_mode` {lookup(params, 'data.split_mode')!r} only applies to dataset dayton; "
            f"use `random` for {dataset}"
        )


def prepare_config(params: Mapping[str, Any]) -> PrepareConfig:
    """Build the :class:`PrepareConfig` a prepare stage uses from validated params."""
    return PrepareConfig(
        image_size=parse_image_size(lookup(params, "image_size")),
        resize_policy=lookup(params, "data.resize_policy"),
        palette=tuple(tuple(int(c) for c in colour) for colour in lookup(params, "data.palette")),
        min_valid_pairs=int(lookup(params, "data.min_valid_pairs")),
        panel_order=lookup(params, "data.panel_order"),
    )


def split_config(params: Mapping[str, Any]) -> SplitConfig:
    """Build the :class:`SplitConfig` from validated params."""
    return SplitConfig(
        seed=int(lookup(params, "seed")),
        test_fraction=float(lookup(params, "data.test_fraction")),
        mode=lookup(params, "data.split_mode"),
    )
