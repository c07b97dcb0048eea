"""A stand-in for the Inception network with random weights, for timing evaluation where the real file is absent.

The 84 MB Inception files cannot always travel (a GPU machine lent for minutes, no internet): this network has
torchvision's Inception-v3 architecture (the same blocks, 2048-d pool features, a 1008-class head as the
StyleGAN2-ADA file has), so an evaluation costs what a real one does. Its scores mean nothing: use it for
timing only, never for reported metrics.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models import inception_v3

from pix2pix.evaluation.inception import FEATURE_DIM, INPUT_SIZE_PX, NUM_CLASSES, InceptionExtractor

STANDIN_SOURCE = Path("<random-weight Inception-v3 stand-in>")


class _StandinInception(nn.Module):
    """``layers``: image → 2048-d pool features; ``output``: the class head (the attributes the full file has)."""

    def __init__(self) -> None:
        super().__init__()
        trunk = inception_v3(weights=None, aux_logits=False, init_weights=False, transform_input=False)
        trunk.fc = nn.Identity()
        trunk.dropout = nn.Identity()
        self.layers = trunk
        self.output = nn.Linear(FEATURE_DIM, NUM_CLASSES)


def _calibrate_batch_norms(network: nn.Module, generator: torch.Generator) -> None:
    """Set every batch norm's running statistics to those of one random batch, layer by layer.

    With random weights the activations shrink towards 0 over the ~90 layers (features ~1e-9, every image the
    same); normalising each layer by its own statistics keeps them of order 1, so FID and KID compute on
    features as varied as real ones.
    """
    for module in network.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = 1.0  # the running statistics become this batch's
    network.train()
    with torch.no_grad():
        network.layers(torch.rand(8, 3, INPUT_SIZE_PX, INPUT_SIZE_PX, generator=generator) * 2 - 1)
    network.eval()


def standin_inception(device: torch.device | str, seed: int = 0) -> InceptionExtractor:
    """A "full"-kind extractor (features and class probabilities) with random weights seeded by ``seed``, on ``device``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = _StandinInception()
    _calibrate_batch_norms(network, torch.Generator().manual_seed(seed))
    network = network.to(device)
    return InceptionExtractor(network=network, device=torch.device(device), kind="full", source=STANDIN_SOURCE)
