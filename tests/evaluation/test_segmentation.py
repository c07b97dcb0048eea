"""The mask-consistency score: class maps, the confusion-matrix scores, the label classes of a manifest, and a
segmenter trained on the generated car sample (facts of the sample: pix2pix/data/sample.py, 5 car classes)."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from torch import nn

from pix2pix.data.palette import CAR_CLASSES, CAR_PALETTE, VOID_COLOUR, build_color_mask
from pix2pix.data.prepare import PrepareConfig, prepare_pairs
from pix2pix.data.sample import write_sample_archive
from pix2pix.data.store import open_pairs, read_manifest
from pix2pix.evaluation.scoring import translate_batches
from pix2pix.evaluation.segmentation import (
    IGNORE_INDEX, LabelSpec, MaskScorer, SegmenterConfig, class_maps, confusion_matrix, label_spec_from_manifest, load_segmenter,
    mask_scores, real_photo_confusion, save_segmenter, segment, train_segmenter,
)
from pix2pix.training.model import InferenceMode

CARS = LabelSpec(np.asarray(CAR_PALETTE), CAR_CLASSES)
CPU = torch.device("cpu")
# The segmenter of these tests (48 street scenes at 64 px, width 8, 10 epochs) scores pixel accuracy 0.784 and
# mIoU 0.358 on the 16 real test photos (2-core AMD EPYC, AVX-512); the best constant answer (all sky) scores
# 0.291 and 0.029. The floors sit between the two, far enough from the measurement for other CPUs' rounding.
FLOOR_PIXEL_ACC, FLOOR_MIOU = 0.55, 0.15


def test_class_maps_invert_the_palette_colouring() -> None:
    ids = np.random.default_rng(0).integers(0, 5, (3, 8, 9))
    colours = np.stack([build_color_mask(mask, CAR_PALETTE) for mask in ids])
    assert np.array_equal(class_maps(colours, CARS), ids)


def test_scores_of_a_known_confusion() -> None:
    truth = np.array([[0, 0, 1, 1, 2, 2]])
    predicted = np.array([[0, 1, 1, 1, 0, 0]])
    spec = LabelSpec(np.asarray(CAR_PALETTE[:3]), CAR_CLASSES[:3])
    scores = mask_scores(confusion_matrix(predicted, truth, spec), spec)
    # class 0: 1 of 2 right, 3 predicted, IoU 1/4; class 1: 2 of 2, 3 predicted, IoU 2/3; class 2: none, IoU 0.
    assert scores["mask_pixel_acc"] == pytest.approx(3 / 6)
    assert scores["mask_class_acc"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert scores["mask_miou"] == pytest.approx((1 / 4 + 2 / 3 + 0) / 3)


def test_void_pixels_and_classes_are_left_out() -> None:
    spec = LabelSpec(np.asarray(CAR_PALETTE[:3]), CAR_CLASSES[:3], void_ids=(2,))
    truth = np.array([[0, 1, 2, 2]])
    predicted = np.array([[0, 1, 0, 1]])  # wrong only where the truth is void
    assert mask_scores(confusion_matrix(predicted, truth, spec), spec) == {
        "mask_pixel_acc": 1.0, "mask_class_acc": 1.0, "mask_miou": 1.0,
    }


def test_manifest_palette_keys_are_read_when_present() -> None:
    manifest = {"layout": "ab", "palette": [[0, 0, 0], [9, 9, 9], [200, 0, 0]], "class_names": ["void", "a", "b"], "void_ids": [0]}
    spec, reason = label_spec_from_manifest(manifest)
    assert reason is None and spec.class_names == ("void", "a", "b") and spec.scored_ids == (1, 2)


@pytest.mark.parametrize("manifest", [{"layout": "dayton4", "palette": None}, {"layout": "ab", "palette": None}])
def test_data_without_label_maps_gets_a_reason_not_a_score(manifest: dict) -> None:
    spec, reason = label_spec_from_manifest(manifest)
    assert spec is None and "not a label map" in reason


def test_a_manifest_from_before_palettes_were_recorded_asks_for_a_new_prepare() -> None:
    spec, reason = label_spec_from_manifest({"layout": "seed", "config": {}})
    assert spec is None and "dvc repro -f prepare" in reason


def test_void_pixels_outside_the_palette_are_ignored_not_snapped_to_a_class() -> None:
    # CamVid-like: void id 11 has no palette colour; prepare paints its pixels black and gives no class black.
    palette = [(70, 130, 180), (128, 64, 128), (244, 35, 232)]
    spec = LabelSpec(np.asarray(palette), ("sky", "road", "pavement"), void_ids=(11,))
    image = np.array([[palette[0], palette[1], VOID_COLOUR, palette[2]]], dtype=np.uint8)[None]
    truth = class_maps(image, spec)
    assert truth.tolist() == [[[0, 1, IGNORE_INDEX, 2]]]
    predicted = np.array([[[0, 1, 0, 2]]])  # wrong only on the void pixel
    assert mask_scores(confusion_matrix(predicted, truth, spec), spec)["mask_pixel_acc"] == 1.0


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray, LabelSpec]:
    """64 generated street scenes at 64 px (small for speed): 48 train, 16 test (A = colour mask, B = photo)."""
    root = tmp_path_factory.mktemp("sample")
    archive = write_sample_archive(root / "sample.zip", n_pairs=64, seed=3)
    cfg = PrepareConfig(image_size=(64, 64), min_valid_pairs=1)
    prepare_pairs(archive, root / "prepared", cfg, workers=1)
    spec, _ = label_spec_from_manifest(read_manifest(root / "prepared"))
    pairs = np.asarray(open_pairs(root / "prepared" / "pairs.npy"))
    return pairs[:48], pairs[48:], spec


@pytest.fixture(scope="module")
def segmenter(sample, tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, LabelSpec]:
    train, _, spec = sample
    cfg = SegmenterConfig(num_classes=spec.num_classes, width=8, epochs=10, batch_size=4, lr=3e-3, seed=1)
    network = train_segmenter(train, spec, cfg, CPU)
    path = tmp_path_factory.mktemp("segmenter") / "segmenter.pt"
    save_segmenter(path, network, cfg, spec, (64, 64))
    return load_segmenter(path, CPU)


class _LookupGenerator(nn.Module):
    """A "generator" that returns the real photo of each input mask it was built with."""

    def __init__(self, inputs: np.ndarray, photos: np.ndarray) -> None:
        super().__init__()
        self.photos = {inputs[i].tobytes(): photos[i] for i in range(len(inputs))}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        masks = ((x + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        photos = np.stack([self.photos[mask.tobytes()] for mask in masks])
        return torch.from_numpy(photos).permute(0, 3, 1, 2).float() / 127.5 - 1


class _GreyGenerator(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def _scores(generator: nn.Module, test: np.ndarray, scorer: MaskScorer) -> dict[str, float]:
    fakes = translate_batches(generator, np.ascontiguousarray(test[:, 0]), CPU, InferenceMode(), seed=0)
    return scorer.score(fakes)


def test_segmenter_reaches_its_floor_on_the_real_test_photos(sample, segmenter) -> None:
    _, test, _ = sample
    network, spec = segmenter
    real = mask_scores(confusion_matrix(segment(network, test[:, 1], CPU), class_maps(test[:, 0], spec), spec), spec)
    assert real["mask_pixel_acc"] >= FLOOR_PIXEL_ACC and real["mask_miou"] >= FLOOR_MIOU, real


def test_a_generator_returning_the_real_photo_scores_the_ceiling_exactly(sample, segmenter) -> None:
    _, test, _ = sample
    network, spec = segmenter
    truth = class_maps(test[:, 0], spec)
    scorer = MaskScorer(network, spec, truth, CPU)
    ceiling = mask_scores(confusion_matrix(segment(network, test[:, 1], CPU), truth, spec), spec)
    assert _scores(_LookupGenerator(test[:, 0], test[:, 1]), test, scorer) == ceiling


def test_a_constant_grey_generator_scores_no_better_than_guessing_by_position(sample, segmenter) -> None:
    _, test, _ = sample
    network, spec = segmenter
    truth = class_maps(test[:, 0], spec)
    scores = _scores(_GreyGenerator(), test, MaskScorer(network, spec, truth, CPU))
    # Every grey photo is the same, so the segmenter answers one fixed class map for all of them (zero padding
    # lets it differ by position): its pixel accuracy cannot beat the per-pixel majority class of the masks.
    counts = np.stack([(truth == label).sum(axis=0) for label in range(spec.num_classes)])
    best_by_position = counts.max(axis=0).sum() / truth.size
    assert scores["mask_pixel_acc"] <= best_by_position + 1e-9
    ceiling = mask_scores(confusion_matrix(segment(network, test[:, 1], CPU), truth, spec), spec)
    assert scores["mask_miou"] < 0.5 * ceiling["mask_miou"], (scores, ceiling)


def test_training_is_deterministic(sample) -> None:
    train, _, spec = sample
    cfg = SegmenterConfig(num_classes=spec.num_classes, width=4, epochs=1, seed=2)
    first, second = (train_segmenter(train[:16], spec, cfg, CPU) for _ in range(2))
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_ceiling_read_in_batches_equals_the_whole_set_at_once(sample, segmenter) -> None:
    _, test, _ = sample
    network, spec = segmenter
    whole = confusion_matrix(segment(network, test[:, 1], CPU), class_maps(test[:, 0], spec), spec)
    indices = np.arange(len(test))[::-1].copy()  # any order: the rows are read sorted, batch by batch
    assert np.array_equal(real_photo_confusion(network, test, indices, spec, CPU, batch_size=5), whole)
