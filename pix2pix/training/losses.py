"""pix2pix objectives: the adversarial losses (for D and G) and the L1 reconstruction term.

Every loss returns a float32 scalar tensor whatever the input dtype, so it is safe to compute under
autocast (bf16/fp16 logits are upcast before the reduction).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pix2pix.choices import GAN_LOSSES
from pix2pix.errors import ConfigError

# The paper halves D's objective so that D learns more slowly than G; applied to every kind alike.
D_LOSS_FACTOR = 0.5


def _check_kind(kind: str) -> None:
    """Raise :class:`ConfigError` unless ``kind`` is one of :data:`GAN_LOSSES`."""
    if kind not in GAN_LOSSES:
        raise ConfigError(f"GAN loss {kind!r} is not one of {', '.join(GAN_LOSSES)}; the paper uses 'vanilla'")


def _real_term(kind: str, logits: torch.Tensor) -> torch.Tensor:
    """Mean loss for calling ``logits`` (any shape) real: BCE to 1, squared error to 1, or hinge relu(1 - x)."""
    logits = logits.float()
    if kind == "vanilla":
        return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    if kind == "lsgan":
        return F.mse_loss(logits, torch.ones_like(logits))
    return F.relu(1.0 - logits).mean()


def _fake_term(kind: str, logits: torch.Tensor) -> torch.Tensor:
    """Mean loss for calling ``logits`` (any shape) fake: BCE to 0, squared error to 0, or hinge relu(1 + x)."""
    logits = logits.float()
    if kind == "vanilla":
        return F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))
    if kind == "lsgan":
        return F.mse_loss(logits, torch.zeros_like(logits))
    return F.relu(1.0 + logits).mean()


def discriminator_loss(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """D loss ``0.5 * (real term + fake term)`` from patch logits ``(N, 1, h, w)``; float32 scalar.

    With all logits 0: vanilla gives ln 2, lsgan 0.5, hinge 1.
    """
    _check_kind(kind)
    return D_LOSS_FACTOR * (_real_term(kind, real_logits) + _fake_term(kind, fake_logits))


def generator_adversarial_loss(kind: str, fake_logits: torch.Tensor) -> torch.Tensor:
    """G's adversarial loss from D's logits on generated pairs; float32 scalar.

    vanilla: BCE to 1 (the non-saturating form), lsgan: squared error to 1, hinge: ``-mean(logits)``.
    """
    _check_kind(kind)
    if kind == "hinge":
        return -fake_logits.float().mean()
    return _real_term(kind, fake_logits)


def l1_loss(fake: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error between two same-shape image batches; float32 scalar (weighted by λ_L1 by the caller)."""
    return F.l1_loss(fake.float(), target.float())
