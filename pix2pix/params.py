"""``params.yaml`` checked and turned into the library's config objects: the one path shared by stages and CLI.

``params.yaml`` is read by ``stages/`` and the CLI only; they hand the plain dict to
:func:`validate_params`, which rejects a bad value with one line naming the key and the allowed values
*before* any work starts. Library functions take config dataclasses (``PrepareConfig``, ``SplitConfig``, ``TrainConfig``), never the
dict; each stage builds its own from the keys it declares. The allowed values come from :mod:`pix2pix.choices`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from pix2pix.choices import (
    ALL_GPUS,
    AMP_MODES,
    DATASETS,
    DIRECTIONS,
    DROPOUT_PLACEMENTS,
    GAN_LOSSES,
    INCEPTION_CHOICES,
    NORMS,
    PANEL_ORDERS,
    RESIZE_POLICIES,
    SAMPLE_LAYOUTS,
    SPLIT_MODES,
    TEST_BATCHNORM_MODES,
    UPSAMPLE_MODES,
)
from pix2pix.data.palette import classes_setting, palette_setting, void_ids_setting
from pix2pix.data.sizes import parse_image_size
from pix2pix.errors import ConfigError
from pix2pix.keys import lookup

# The paper's generator and discriminator widths; params.yaml halves them so the sample run fits a 2-core CPU.
PAPER_WIDTHS = {"model.ngf": 64, "model.ndf": 64}


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
    _number(params, "data.split_seed", int, 0)
    _number(params, "eval.seed", int, 0)
    _choice(params, "data.resize_policy", RESIZE_POLICIES)
    _choice(params, "data.split_mode", SPLIT_MODES)
    _number(params, "data.test_fraction", float, 0.01, 0.9)
    _number(params, "data.min_valid_pairs", int, 1)
    _number(params, "data.max_archive_bytes", int, 1)
    for key, check in (("data.palette", palette_setting), ("data.void_ids", void_ids_setting), ("data.classes", classes_setting)):
        check(lookup(params, key), f"params.yaml: `{key}`")
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
    _choice(params, "model.upsample", UPSAMPLE_MODES)
    _choice(params, "model.gan_loss", GAN_LOSSES)
    _number(params, "train.epochs_decay", int, 0)
    _number(params, "train.beta1", float, 0.0, 0.999)
    _choice(params, "train.amp", AMP_MODES)
    _number(params, "train.log_every_steps", int, 1)
    _number(params, "train.log_every_s", float, 0)
    _number(params, "train.snapshot_every", int, 1)
    _number(params, "train.keep_checkpoints", int, 1)
    _number(params, "train.checkpoint_every_steps", int, 0)
    _number(params, "eval.sample_count", int, 0)
    gpus = lookup(params, "train.gpus")
    if gpus != ALL_GPUS:
        if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
            raise ConfigError(f"params.yaml: `train.gpus` is {gpus!r}; allowed: a whole number ≥ 1, or {ALL_GPUS}")
        if lookup(params, "batch_size") % gpus:
            raise ConfigError(
                f"params.yaml: `batch_size` {lookup(params, 'batch_size')} does not split evenly over `train.gpus` {gpus}: "
                "use a multiple of it (batch_size is the global batch)"
            )
    for flag in ("train.jitter", "train.flip", "train.compile", "train.deterministic", "train.snapshot_untrained",
                 "eval.inference_dropout", "mlflow.enabled"):
        if not isinstance(lookup(params, flag), bool):
            raise ConfigError(f"params.yaml: `{flag}` is {lookup(params, flag)!r}; allowed: true, false")
    _number(params, "eval.num_images", int, 0)
    _choice(params, "eval.inception", INCEPTION_CHOICES)
    _choice(params, "eval.batchnorm", TEST_BATCHNORM_MODES)
    _number(params, "eval.batch_size", int, 1)
    for key in ("width", "epochs", "batch_size"):
        _number(params, f"eval.segmenter.{key}", int, 1)
    _number(params, "eval.segmenter.lr", float, 1e-8, 0.1)
    if lookup(params, "data.split_mode") in ("official", "location") and dataset != "dayton":
        raise ConfigError(
            f"params.yaml: `data.split_mode` {lookup(params, 'data.split_mode')!r} only applies to dataset dayton; "
            f"use `random` for {dataset}"
        )


def narrower_than_paper(params: Mapping[str, Any]) -> str | None:
    """One line for the log when data other than the sample trains networks narrower than the paper's, else None.

    The defaults size a few-minute CPU run on the sample (``model.ngf = ndf = 32``); on real data that still
    trains, with a quarter of each convolution's work and results not comparable with the paper's, so a run
    that kept them by accident should say so rather than fail.
    """
    if lookup(params, "dataset") == "sample":
        return None
    narrow = {key: lookup(params, key) for key, paper in PAPER_WIDTHS.items() if lookup(params, key) < paper}
    if not narrow:
        return None
    found = ", ".join(f"{key}={value}" for key, value in narrow.items())
    wanted = " ".join(f"-S {key}={PAPER_WIDTHS[key]}" for key in narrow)
    return f"{found}: narrower than the paper's networks (the sample run's size); for the paper's, add {wanted}"
