"""pix2pix objectives: the adversarial losses (for D and G) and the L1 reconstruction term.

Every loss returns a float32 scalar tensor whatever the input dtype, so it is safe to compute under
autocast (bf16/fp16 logits are upcast before the reduction).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# The paper halves D's objective so that D learns more slowly than G; applied to every kind alike.
D_LOSS_FACTOR = 0.5


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def _squared(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.mse_loss(logits, torch.full_like(logits, target))


# Per kind (the names of pix2pix.choices.GAN_LOSSES, checked by TrainConfig): the mean loss for calling logits
# real, for calling them fake, and G's adversarial loss. vanilla: BCE (G's is the non-saturating form);
# lsgan: squared error to 1 / 0; hinge: relu(1 - x) / relu(1 + x), and -mean(x) for G.
_TERMS = {
    "vanilla": (lambda x: _bce(x, 1.0), lambda x: _bce(x, 0.0), lambda x: _bce(x, 1.0)),
    "lsgan": (lambda x: _squared(x, 1.0), lambda x: _squared(x, 0.0), lambda x: _squared(x, 1.0)),
    "hinge": (lambda x: F.relu(1.0 - x).mean(), lambda x: F.relu(1.0 + x).mean(), lambda x: -x.mean()),
}


def discriminator_loss(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """D loss ``0.5 * (real term + fake term)`` from patch logits ``(N, 1, h, w)``; float32 scalar.

    With all logits 0: vanilla gives ln 2, lsgan 0.5, hinge 1.
    """
    real_term, fake_term, _ = _TERMS[kind]
    return D_LOSS_FACTOR * (real_term(real_logits.float()) + fake_term(fake_logits.float()))


def generator_adversarial_loss(kind: str, fake_logits: torch.Tensor) -> torch.Tensor:
    """G's adversarial loss from D's logits on generated pairs; float32 scalar.

    vanilla: BCE to 1 (the non-saturating form), lsgan: squared error to 1, hinge: ``-mean(logits)``.
    """
    return _TERMS[kind][2](fake_logits.float())


def l1_loss(fake: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error between two same-shape image batches; float32 scalar (weighted by λ_L1 by the caller)."""
    return F.l1_loss(fake.float(), target.float())
