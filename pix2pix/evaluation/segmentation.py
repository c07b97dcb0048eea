"""Mask consistency: the paper's "FCN-score" for label map → photo, with a small segmenter trained offline.

The paper (Isola et al., §4.2) segments generated Cityscapes photos with a network trained on real photos
and scores the predicted classes against the input label map: per-pixel accuracy, per-class accuracy and
class IoU (real photos, the "ground truth" row: 0.80 / 0.26 / 0.21; L1+cGAN 0.66 / 0.23 / 0.17). Here the
network is :class:`SegmentationUNet`, trained by the ``segmenter`` stage with cross-entropy on the train
split's real photos against the class maps of their A sides (colours → class ids through the data's palette);
its score on the real test photos is the ceiling a generator can reach under this protocol.

Scores are computed from one confusion matrix over all pixels of the scored set (as the Cityscapes scripts
the paper used do): pixel accuracy = correct / all, class accuracy = mean over classes of correct / true
pixels, mIoU = mean over classes of TP / (TP + FP + FN). Classes with no pixel in the ground truth are left out
of the class accuracy; of the IoU, classes with neither true nor predicted pixels. Void classes are left out
everywhere (their pixels are neither truth nor counted predictions).

For Cityscapes prepared the paper's way (the 19 official trainIds, 255 ignored: :mod:`pix2pix.data.cityscapes`)
these three numbers are the paper's protocol, with our segmenter in place of its FCN-8s;
:func:`cityscapes_fcn_scores` gives them under names that say so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pix2pix.atomic import atomic_path
from pix2pix.data.cityscapes import is_train_id_classes
from pix2pix.data.palette import VOID_COLOUR, palette_array, snap_to_palette
from pix2pix.data.store import Pairs
from pix2pix.errors import ConfigError, DataError
from pix2pix.training.pixels import to_unit_range

MASK_METRIC_NAMES = ("mask_pixel_acc", "mask_class_acc", "mask_miou")
REAL_METRIC_NAMES = tuple(f"{name}_real" for name in MASK_METRIC_NAMES)
# The paper's Cityscapes FCN-score columns (per-pixel acc., per-class acc., class IoU) for our mask scores.
CITYSCAPES_FCN_NAMES = dict(
    zip(MASK_METRIC_NAMES, ("cityscapes_fcn_per_pixel_acc", "cityscapes_fcn_per_class_acc", "cityscapes_fcn_class_iou"))
)
# The paper's table (Isola et al., Table 1/2): L1+cGAN and the real photos ("ground truth"), FCN-8s as the segmenter.
PAPER_CITYSCAPES_FCN = {"L1+cGAN": (0.66, 0.23, 0.17), "ground truth": (0.80, 0.26, 0.21)}
# Class-map value of void pixels (painted VOID_COLOUR in A by prepare): neither truth nor a training target.
IGNORE_INDEX = 255
SEGMENTER_FILE = "segmenter.pt"
FORMAT_VERSION = 1
# Pixels per chunk when snapping colours to the palette (bounds the (pixels, classes) distance matrix).
SNAP_CHUNK_PIXELS = 1 << 20


@dataclass(frozen=True)
class LabelSpec:
    """The classes of a label-map A side: ``palette`` (K, 3) uint8 colour of class id k, their names, void ids."""

    palette: np.ndarray
    class_names: tuple[str, ...]
    void_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "palette", palette_array(self.palette))
        if len(self.class_names) != len(self.palette):
            raise DataError(f"{len(self.class_names)} class names for a palette of {len(self.palette)} colours")
        if len(self.palette) > IGNORE_INDEX:
            raise DataError(f"{len(self.palette)} classes: the mask-consistency score handles at most {IGNORE_INDEX}")
        if len(self.scored_ids) < 1:
            raise DataError("every class is void: nothing to score")

    @property
    def num_classes(self) -> int:
        return len(self.palette)

    @property
    def scored_ids(self) -> tuple[int, ...]:
        """Class ids that count in the scores (all but the void ones)."""
        return tuple(k for k in range(len(self.palette)) if k not in self.void_ids)

    def to_dict(self) -> dict[str, Any]:
        return {"palette": self.palette.tolist(), "class_names": list(self.class_names), "void_ids": list(self.void_ids)}


def label_spec_from_manifest(manifest: Mapping[str, Any]) -> tuple[LabelSpec | None, str | None]:
    """The label classes of a prepared store's A side, or ``(None, reason)`` when A is no label map.

    Reads the manifest's top-level ``palette`` (list of [r, g, b] by class id; null when A is no label map),
    ``class_names`` and ``void_ids``, as ``prepare`` records them. Void ids may lie outside the palette (CamVid's
    11 is painted, not coloured): their pixels are :data:`~pix2pix.data.palette.VOID_COLOUR` in A.
    """
    if "palette" not in manifest:
        return None, "the prepared data records no palette (prepared by an older version): run `dvc repro -f prepare`"
    if manifest["palette"] is None:
        return None, f"the A side of this data ({manifest.get('layout')} layout) is not a label map"
    palette = manifest["palette"]
    names = manifest.get("class_names") or [f"class_{k}" for k in range(len(palette))]
    return LabelSpec(np.asarray(palette), tuple(names), tuple(manifest.get("void_ids") or ())), None


def class_maps(label_images: np.ndarray, spec: LabelSpec) -> np.ndarray:
    """Class ids ``(N, H, W)`` uint8 of colour label maps ``(N, H, W, 3)`` uint8, each pixel its nearest palette colour.

    With void ids, pixels of exactly :data:`~pix2pix.data.palette.VOID_COLOUR` are :data:`IGNORE_INDEX` (prepare
    gives no other class that colour when there are void ids).
    """
    if label_images.ndim != 4 or label_images.shape[3] != 3 or label_images.dtype != np.uint8:
        raise DataError(f"label maps must be uint8 (N, H, W, 3), got {label_images.dtype} {label_images.shape}")
    n, height, width, _ = label_images.shape
    rows = max(1, SNAP_CHUNK_PIXELS // max(1, width))
    flat = np.asarray(label_images).reshape(n * height, width, 3)
    ids = np.empty((n * height, width), dtype=np.uint8)
    for start in range(0, len(flat), rows):
        ids[start : start + rows] = snap_to_palette(flat[start : start + rows], spec.palette)[1]
    if spec.void_ids:
        ids[(flat == np.asarray(VOID_COLOUR, dtype=np.uint8)).all(axis=2)] = IGNORE_INDEX
    return ids.reshape(n, height, width)


def confusion_matrix(predicted: np.ndarray, truth: np.ndarray, spec: LabelSpec) -> np.ndarray:
    """``(K, K)`` int64 counts, rows = true class, columns = predicted class, of integer maps of equal shape.

    Pixels whose true class is void are left out; a void prediction on a scored pixel counts as wrong.
    """
    if predicted.shape != truth.shape:
        raise DataError(f"predicted {predicted.shape} and true {truth.shape} class maps differ in shape")
    k = spec.num_classes
    keep = (truth != IGNORE_INDEX) & ~np.isin(truth, spec.void_ids)
    codes = truth[keep].astype(np.int64) * k + predicted[keep].astype(np.int64)
    return np.bincount(codes, minlength=k * k).reshape(k, k)


def mask_scores(confusion: np.ndarray, spec: LabelSpec) -> dict[str, float]:
    """``mask_pixel_acc``, ``mask_class_acc``, ``mask_miou`` (all in [0, 1]) of a confusion matrix, void classes out."""
    scored = list(spec.scored_ids)
    matrix = confusion.astype(np.float64)
    true_counts = matrix[scored].sum(axis=1)
    hits = matrix[scored, scored]
    predicted_counts = matrix[:, scored].sum(axis=0)
    if true_counts.sum() == 0:
        raise DataError("no scored pixel in the ground truth: every pixel is void")
    present = true_counts > 0
    union = true_counts + predicted_counts - hits
    return {
        "mask_pixel_acc": float(hits.sum() / true_counts.sum()),
        "mask_class_acc": float((hits[present] / true_counts[present]).mean()),
        "mask_miou": float((hits[union > 0] / union[union > 0]).mean()),
    }


def cityscapes_fcn_scores(scores: Mapping[str, Any], class_names: Any) -> dict[str, Any]:
    """The mask scores in ``scores`` under the Cityscapes protocol's names, when ``class_names`` are the 19 trainIds.

    ``mask_pixel_acc`` → ``cityscapes_fcn_per_pixel_acc`` (and so on; ``*_real`` → ``*_real``), values unchanged;
    ``{}`` for other classes: the protocol is defined only over the 19 official trainIds.
    """
    if not is_train_id_classes(class_names):
        return {}
    renamed = {**CITYSCAPES_FCN_NAMES, **{f"{k}_real": f"{v}_real" for k, v in CITYSCAPES_FCN_NAMES.items()}}
    return {renamed[name]: value for name, value in scores.items() if name in renamed}


def cityscapes_fcn_note(class_names: Any) -> str | None:
    """What the protocol-named scores are and how they compare with the paper's; None for other classes."""
    if not is_train_id_classes(class_names):
        return None
    paper = "; ".join(f"{row} {' / '.join(f'{v:.2f}' for v in values)}" for row, values in PAPER_CITYSCAPES_FCN.items())
    return (
        "Cityscapes protocol of the pix2pix paper (FCN-score): the generated photos of the test split (Cityscapes val) "
        "are segmented and scored against their input label maps over the 19 official trainIds, ignore (255) left out, "
        f"from one confusion matrix: {', '.join(CITYSCAPES_FCN_NAMES.values())} (per-pixel accuracy, per-class "
        "accuracy, class IoU; *_real: the real photos). Our segmenter (a small U-Net trained on the train split's real "
        "photos at this image size) stands in for the paper's FCN-8s, so the numbers compare only approximately with "
        f"the paper's ({paper})"
    )


@dataclass(frozen=True)
class SegmenterConfig:
    """The segmenter and its training: U-Net ``width`` (channels of the first level, doubled per level, 4 levels
    at most), ``epochs`` over the train photos in ``batch_size`` batches, Adam at ``lr``, everything seeded."""

    num_classes: int
    width: int = 16
    epochs: int = 30
    batch_size: int = 8
    lr: float = 2e-3
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("num_classes", "width", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"segmenter {name} must be a positive integer, got {value!r}")
        if not 0 < self.lr < 1:
            raise ConfigError(f"segmenter lr must be in (0, 1), got {self.lr!r}")


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3×3 conv → group norm → ReLU layers (the U-Net's unit), size kept.

    Group norm (up to 8 groups) rather than batch norm: a photo is segmented the same alone or in any batch,
    and a short training run leaves no running statistics behind the weights.
    """
    groups = math.gcd(8, out_channels)
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.GroupNorm(groups, out_channels), nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), nn.GroupNorm(groups, out_channels), nn.ReLU(inplace=True),
    )


def segmenter_levels(image_size: tuple[int, int]) -> int:
    """U-Net levels for ``(H, W)``: 4, fewer for images whose short side would drop below 8 px at the bottom."""
    return max(1, min(4, int(np.log2(min(image_size))) - 2))


class SegmentationUNet(nn.Module):
    """A small U-Net: photo ``(N, 3, H, W)`` in [-1, 1] → class logits ``(N, K, H, W)``; H and W divisible by
    ``2**(levels - 1)``. 0.48 M parameters at width 16 and 4 levels, 1.9 M at width 32."""

    def __init__(self, num_classes: int, width: int, levels: int) -> None:
        super().__init__()
        channels = [width * 2**level for level in range(levels)]
        self.down = nn.ModuleList(_conv_block(c_in, c_out) for c_in, c_out in zip([3] + channels[:-1], channels))
        self.upsample = nn.ModuleList(nn.ConvTranspose2d(c, c // 2, 2, stride=2) for c in reversed(channels[1:]))
        self.up = nn.ModuleList(_conv_block(c, c // 2) for c in reversed(channels[1:]))
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, block in enumerate(self.down):
            x = block(x if level == 0 else nn.functional.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for upsample, block in zip(self.upsample, self.up):
            x = block(torch.cat([upsample(x), skips.pop()], dim=1))
        return self.head(x)


def _photos_to_input(photos: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` → float ``(N, 3, H, W)`` in [-1, 1] on ``device``."""
    return to_unit_range(torch.from_numpy(np.ascontiguousarray(photos)).to(device).permute(0, 3, 1, 2))


def train_segmenter(
    pairs: Pairs,
    spec: LabelSpec,
    cfg: SegmenterConfig,
    device: torch.device,
    progress: Callable[[int, float], None] | None = None,
) -> SegmentationUNet:
    """Train a :class:`SegmentationUNet` on the real photos (B sides) of ``pairs`` against the class ids of their
    colour label maps (A sides); ``pairs`` is uint8 ``(N, 2, H, W, 3)``, an array or a memory-mapped split view.

    Batches are read and turned into class ids one at a time, so memory does not grow with N (Dayton's or
    Cityscapes' train split need not fit in RAM). Cross-entropy with void ids ignored; Adam; a random horizontal
    flip per image; batches in a seeded order. The same inputs and config give the same weights on one machine
    (deterministic kernels, seeded RNGs). ``progress(epoch, mean_loss)`` is called after each epoch. Returns the
    network in eval mode.
    """
    if len(pairs) < 1:
        raise DataError("no training pairs: the segmenter needs at least one photo with its label map")
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(cfg.seed)
            network = SegmentationUNet(cfg.num_classes, cfg.width, segmenter_levels(pairs.shape[2:4])).to(device)
            optimizer = torch.optim.Adam(network.parameters(), lr=cfg.lr)
            rng = np.random.default_rng(cfg.seed)
            network.train()
            for epoch in range(1, cfg.epochs + 1):
                order = rng.permutation(len(pairs))
                flips = rng.random(len(pairs)) < 0.5
                total, batches = 0.0, 0
                for start in range(0, len(order), cfg.batch_size):
                    chosen = np.sort(order[start : start + cfg.batch_size])
                    batch = np.asarray(pairs[chosen])
                    x = _photos_to_input(batch[:, 1], device)
                    y = torch.from_numpy(_targets(class_maps(batch[:, 0], spec), spec)).to(device)
                    flip = torch.from_numpy(flips[chosen]).to(device)
                    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
                    y = torch.where(flip.view(-1, 1, 1), y.flip(2), y)
                    loss = nn.functional.cross_entropy(network(x), y, ignore_index=IGNORE_INDEX)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    total, batches = total + loss.item(), batches + 1
                if progress is not None:
                    progress(epoch, total / batches)
    finally:
        torch.use_deterministic_algorithms(previous)
    return network.eval()


def _targets(labels: np.ndarray, spec: LabelSpec) -> np.ndarray:
    """int64 cross-entropy targets of class ids ``labels``, void ids set to :data:`IGNORE_INDEX`."""
    targets = labels.astype(np.int64)
    for void in spec.void_ids:
        targets[labels == void] = IGNORE_INDEX
    return targets


def real_photo_confusion(
    network: nn.Module, pairs: Pairs, indices: np.ndarray, spec: LabelSpec, device: torch.device, batch_size: int = 64
) -> np.ndarray:
    """The ``(K, K)`` confusion of ``network`` on the real photos of ``pairs[indices]`` against their label maps,
    read ``batch_size`` pairs at a time (the ceiling of the mask scores, at any number of test pairs)."""
    total = np.zeros((spec.num_classes, spec.num_classes), dtype=np.int64)
    for start in range(0, len(indices), batch_size):
        batch = np.asarray(pairs[np.sort(indices[start : start + batch_size])])
        total += confusion_matrix(segment(network, batch[:, 1], device), class_maps(batch[:, 0], spec), spec)
    return total


@torch.no_grad()
def segment(network: nn.Module, photos: np.ndarray, device: torch.device, batch_size: int = 32) -> np.ndarray:
    """Predicted class ids ``(N, H, W)`` uint8 of photos ``(N, H, W, 3)`` uint8 (the network in eval mode)."""
    network.eval()
    parts = [
        network(_photos_to_input(photos[i : i + batch_size], device)).argmax(dim=1).to(torch.uint8).cpu().numpy()
        for i in range(0, len(photos), batch_size)
    ]
    return np.concatenate(parts)


def save_segmenter(path: Path, network: SegmentationUNet, cfg: SegmenterConfig, spec: LabelSpec, image_size: Sequence[int]) -> None:
    """Write the segmenter (weights on CPU, its config, the label classes and the image size) atomically."""
    payload = {
        "format_version": FORMAT_VERSION,
        "config": asdict(cfg),
        "labels": spec.to_dict(),
        "image_size": list(image_size),
        "state_dict": {k: v.detach().cpu() for k, v in network.state_dict().items()},
    }
    with atomic_path(Path(path)) as tmp:
        torch.save(payload, tmp)


def load_segmenter(path: Path, device: torch.device) -> tuple[SegmentationUNet, LabelSpec]:
    """The segmenter written by :func:`save_segmenter`, in eval mode on ``device``, and its label classes."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        cfg = SegmenterConfig(**payload["config"])
        labels = payload["labels"]
        spec = LabelSpec(np.asarray(labels["palette"]), tuple(labels["class_names"]), tuple(labels["void_ids"]))
        network = SegmentationUNet(cfg.num_classes, cfg.width, segmenter_levels(tuple(payload["image_size"])))
        network.load_state_dict(payload["state_dict"])
    except FileNotFoundError as error:
        raise DataError(f"{path}: missing; run `dvc repro segmenter`") from error
    except (KeyError, TypeError, RuntimeError, ValueError) as error:
        raise DataError(f"{path}: not a readable segmenter ({error}); run `dvc repro -f segmenter`") from error
    return network.to(device).eval(), spec


@dataclass
class MaskScorer:
    """Scores generated photos against the label maps they were generated from (one per eval input)."""

    network: nn.Module
    spec: LabelSpec
    truth: np.ndarray  # (N, H, W) uint8 class ids of the eval inputs
    device: torch.device

    def score(self, photos: np.ndarray) -> dict[str, float]:
        """``MASK_METRIC_NAMES`` of photos ``(N, H, W, 3)`` uint8 aligned with ``truth``."""
        if len(photos) != len(self.truth):
            raise DataError(f"{len(photos)} photos to score against {len(self.truth)} label maps")
        predicted = segment(self.network, photos, self.device)
        return mask_scores(confusion_matrix(predicted, self.truth, self.spec), self.spec)
