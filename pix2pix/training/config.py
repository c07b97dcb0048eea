"""The training run's configuration: :class:`TrainConfig`, its validation and the hash that decides resumes."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from pix2pix.choices import AMP_MODES, DIRECTIONS, GAN_LOSSES
from pix2pix.errors import ConfigError
from pix2pix.training.model import ModelConfig

# Fields that change neither the weights nor their updates, left out of config_hash. The schedule length
# (epochs, epochs_decay) is checked separately against the learning rates of the finished epochs, so that
# extending a run whose rates are unchanged resumes instead of starting over.
NON_WEIGHT_FIELDS = frozenset(
    {"epochs", "epochs_decay", "log_every_steps", "compile", "channels_last", "deterministic", "accelerate_cpu",
     "snapshot_every", "snapshot_untrained", "keep_checkpoints", "checkpoint_every_steps"}
)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run.

    ``batch_size`` is the global batch (split evenly over the ranks of a multi-GPU run, so the result does
    not depend on the number of GPUs). ``direction`` "BtoA" swaps the stored A and B at load time;
    ``mask_input`` says the *stored* A side is a colour mask (resized nearest-neighbour by the jitter).
    ``amp``: "auto" = bf16 autocast on GPUs that compute it natively, else fp16 with a gradient scaler; on CPUs with
    native bf16 units (AMX, AVX512-BF16) bf16 autocast + channels_last, else fp32 (:func:`pix2pix.training.trainer.resolve_amp`). ``compile`` acts on every device (on CPU through Inductor's C++ backend, which
    ``bench/train_throughput.py`` measured slower than eager, see docs/benchmarks.md); ``channels_last`` on CUDA
    only. ``accelerate_cpu`` applies AMP and channels_last on CPU too ("auto" = bf16 there): the explicit request
    of tests and benchmarks, which run the GPU code paths on CPU; it is off by default because fp32 eager is what
    measured fastest on CPU.
    ``deterministic`` selects deterministic kernels (and turns off cudnn autotuning).
    Files: a generator snapshot after every ``snapshot_every``-th epoch and the last (and of the untrained
    generator with ``snapshot_untrained``), the last ``keep_checkpoints`` checkpoints, written at every epoch's end
    and, with ``checkpoint_every_steps`` > 0, every that many optimizer steps inside an epoch too.
    """

    model: ModelConfig
    batch_size: int
    epochs: int
    direction: str = "AtoB"
    epochs_decay: int = 0
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lambda_l1: float = 100.0
    gan_loss: str = "vanilla"
    seed: int = 0
    jitter: bool = True
    flip: bool = True
    mask_input: bool = True
    amp: str = "auto"
    compile: bool = False
    channels_last: bool = True
    deterministic: bool = False
    accelerate_cpu: bool = False
    log_every_steps: int = 50
    snapshot_every: int = 1
    snapshot_untrained: bool = False
    keep_checkpoints: int = 2
    checkpoint_every_steps: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.model, Mapping):
            object.__setattr__(self, "model", ModelConfig.from_dict(self.model))
        _check(isinstance(self.model, ModelConfig), f"train model must be a ModelConfig, got {self.model!r}")
        _check(
            self.model.in_channels == 3 and self.model.out_channels == 3,
            "model in_channels/out_channels must be 3: the pairs store holds RGB images",
        )
        _check(self.direction in DIRECTIONS, f"direction {self.direction!r} is not one of AtoB, BtoA")
        _check(self.gan_loss in GAN_LOSSES, f"gan_loss {self.gan_loss!r} is not one of {', '.join(GAN_LOSSES)}")
        _check(self.amp in AMP_MODES, f"amp {self.amp!r} is not one of {', '.join(AMP_MODES)}")
        for name, low in (("batch_size", 1), ("epochs", 1), ("log_every_steps", 1), ("epochs_decay", 0), ("seed", 0),
                          ("snapshot_every", 1), ("keep_checkpoints", 1), ("checkpoint_every_steps", 0)):
            value = getattr(self, name)
            _check(_is_int(value) and value >= low, f"{name} must be an integer ≥ {low}, got {value!r}")
        for name in ("jitter", "flip", "mask_input", "compile", "channels_last", "deterministic", "accelerate_cpu",
                     "snapshot_untrained"):
            _check(isinstance(getattr(self, name), bool), f"{name} must be true or false, got {getattr(self, name)!r}")
        _check(_is_number(self.lr) and 0 < self.lr < math.inf, f"lr must be a positive number, got {self.lr!r}")
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            _check(_is_number(value) and 0 <= value < 1, f"{name} must be in [0, 1), got {value!r}")
        _check(
            _is_number(self.lambda_l1) and 0 <= self.lambda_l1 < math.inf,
            f"lambda_l1 must be a number ≥ 0, got {self.lambda_l1!r}; the paper uses 100",
        )

    @property
    def total_epochs(self) -> int:
        """``epochs + epochs_decay``."""
        return self.epochs + self.epochs_decay

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of builtins (the model as its own dict), safe for JSON and ``torch.save``."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["model"] = self.model.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; raise ConfigError on unknown keys."""
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        _check(not unknown, f"unknown train config keys {unknown}")
        return cls(**data)


def train_config_from_params(params: Mapping[str, Any], image_size: tuple[int, int], mask_input: bool) -> TrainConfig:
    """The trainer's config from ``params.yaml``'s training keys (validated) and the stored pairs.

    ``image_size`` is the stored pairs' ``(H, W)``; ``mask_input`` says their A side is a colour mask (resized
    nearest by the jitter). The one mapping of params keys to :class:`TrainConfig` fields (stage and CLI).
    """
    model, options = params["model"], params["train"]
    return TrainConfig(
        model=ModelConfig(
            image_size=tuple(image_size), ngf=model["ngf"], ndf=model["ndf"], norm=model["norm"],
            n_layers_d=model["n_layers_d"], dropout_placement=model["dropout_placement"], upsample=model["upsample"],
        ),
        batch_size=params["batch_size"], epochs=params["epochs"], direction=params["direction"],
        epochs_decay=options["epochs_decay"], lr=float(params["lr"]), beta1=float(options["beta1"]),
        lambda_l1=float(params["lambda_l1"]), gan_loss=model["gan_loss"], seed=params["seed"],
        jitter=options["jitter"], flip=options["flip"], mask_input=mask_input, amp=options["amp"],
        compile=options["compile"], deterministic=options["deterministic"], log_every_steps=options["log_every_steps"],
        snapshot_every=options["snapshot_every"], snapshot_untrained=options["snapshot_untrained"],
        keep_checkpoints=options["keep_checkpoints"], checkpoint_every_steps=options["checkpoint_every_steps"],
    )


def _check(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless ``condition``."""
    if not condition:
        raise ConfigError(message)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def config_hash(cfg: TrainConfig) -> str:
    """sha256 (hex) of the canonical JSON of the fields that affect the weights (all but NON_WEIGHT_FIELDS)."""
    relevant = {key: value for key, value in cfg.to_dict().items() if key not in NON_WEIGHT_FIELDS}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
