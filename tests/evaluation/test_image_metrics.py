"""FID, KID, IS and pixel metrics on cases with known answers, and against clean-fid's own functions."""

from __future__ import annotations

import numpy as np
import pytest
from cleanfid import fid as cleanfid

from pix2pix.errors import DataError
from pix2pix.evaluation.image_metrics import (
    feature_statistics,
    fid_from_features,
    frechet_distance,
    inception_score,
    kid_from_features,
    mean_l1,
    mean_psnr,
    mean_ssim,
    pixel_metrics,
)

# clean-fid 0.1.35 still passes scipy's deprecated `disp` to sqrtm.
pytestmark = pytest.mark.filterwarnings("ignore:The `disp` argument:DeprecationWarning")


def _features(seed: int, n: int, dim: int = 32, shift: float = 0.0) -> np.ndarray:
    """Non-negative (n, dim) features like Inception pool outputs."""
    return np.abs(np.random.default_rng(seed).normal(size=(n, dim))) + shift


def _images(seed: int, n: int = 3, size: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def test_fid_of_a_set_with_itself_is_zero():
    features = _features(0, 200)
    assert fid_from_features(features, features) == pytest.approx(0.0, abs=1e-6)


def test_fid_of_gaussians_equals_the_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    var1, var2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    # Diagonal covariances commute: d^2 = |mu1 - mu2|^2 + sum (sd1 - sd2)^2.
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected, rel=1e-9)


def test_fid_of_a_rotated_covariance_equals_the_closed_form():
    rotation, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(4, 4)))
    eigenvalues = np.array([0.5, 1.0, 2.0, 4.0])
    sigma = rotation @ np.diag(eigenvalues) @ rotation.T
    # Against the identity: Tr(I + S - 2 sqrt(S)) = sum (1 - sqrt(lambda))^2.
    expected = np.sum((1 - np.sqrt(eigenvalues)) ** 2)
    assert frechet_distance(np.zeros(4), np.eye(4), np.zeros(4), sigma) == pytest.approx(expected, rel=1e-9)


def test_fid_equals_cleanfid_on_the_same_features():
    first, second = _features(1, 50), _features(2, 60, shift=0.3)
    assert fid_from_features(first, second) == pytest.approx(cleanfid.fid_from_feats(first, second), rel=1e-9)


def test_fid_equals_cleanfid_with_fewer_samples_than_features():
    # Singular covariances, as with any small evaluation set against 2048-d Inception features.
    first, second = _features(10, 20, dim=256), _features(11, 24, dim=256, shift=0.3)
    assert fid_from_features(first, second) == pytest.approx(cleanfid.fid_from_feats(first, second), rel=1e-6)


def test_fid_with_mismatched_statistics_raises_data_error():
    with pytest.raises(DataError, match="do not match"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_kid_equals_cleanfid_kernel_distance_under_the_same_seed():
    # Unequal set sizes: the larger set is subsampled, so the draw order must match clean-fid's.
    first, second = _features(3, 40), _features(4, 55, shift=0.2)
    np.random.seed(7)
    expected = cleanfid.kernel_distance(first, second, num_subsets=20, max_subset_size=30)
    assert kid_from_features(first, second, num_subsets=20, max_subset_size=30, seed=7) == pytest.approx(
        expected, rel=1e-12
    )


def test_kid_of_equal_sets_within_one_subset_equals_cleanfids_hundred_subsets():
    # Computed once here (every subset is the whole sets), 100 times by clean-fid.
    first, second = _features(10, 50), _features(11, 50, shift=0.3)
    np.random.seed(5)
    expected = cleanfid.kernel_distance(first, second)
    assert kid_from_features(first, second) == pytest.approx(expected, rel=1e-12)


def test_kid_does_not_depend_on_the_seed_when_subsets_cover_both_sets():
    first, second = _features(5, 30), _features(6, 30, shift=0.2)
    assert kid_from_features(first, second, seed=0) == pytest.approx(kid_from_features(first, second, seed=1), rel=1e-12)


def test_kid_grows_with_the_distance_between_sets():
    base = _features(7, 60)
    near, far = _features(8, 60, shift=0.1), _features(9, 60, shift=1.0)
    assert kid_from_features(base, far) > kid_from_features(base, near) > 0


def test_inception_score_of_uniform_predictions_is_one():
    mean, std = inception_score(np.full((20, 1008), 1 / 1008), splits=4)
    assert (mean, std) == pytest.approx((1.0, 0.0), abs=1e-9)


def test_inception_score_of_n_confident_distinct_classes_is_n():
    mean, std = inception_score(np.eye(5, 1008), splits=1)
    assert (mean, std) == pytest.approx((5.0, 0.0), abs=1e-9)


def test_inception_score_splits_score_separately():
    # Two splits of 3 rows, each with 3 distinct confident classes: 3 per split, whatever the other split holds.
    probs = np.eye(6, 1008)[[0, 1, 2, 0, 1, 2]]
    assert inception_score(probs, splits=2) == pytest.approx((3.0, 0.0), abs=1e-9)


def test_inception_score_rejects_logits():
    with pytest.raises(DataError, match="softmax"):
        inception_score(np.random.default_rng(0).normal(size=(20, 1008)), splits=2)


def test_inception_score_needs_at_least_one_row_per_split():
    with pytest.raises(DataError, match="splits=10"):
        inception_score(np.full((4, 1008), 1 / 1008), splits=10)


def test_identical_images_have_zero_l1_infinite_psnr_and_unit_ssim():
    images = _images(0)
    assert pixel_metrics(images, images.copy()) == {"l1": 0.0, "psnr": float("inf"), "ssim": pytest.approx(1.0)}


def test_l1_is_measured_on_the_minus_one_to_one_scale():
    black, white = np.zeros((2, 8, 8, 3), np.uint8), np.full((2, 8, 8, 3), 255, np.uint8)
    assert mean_l1(black, white) == pytest.approx(2.0)


def test_psnr_of_a_known_error():
    real = _images(1).clip(0, 254)
    # Every pixel off by one: MSE 1, PSNR 20 log10(255).
    assert mean_psnr(real + 1, real) == pytest.approx(20 * np.log10(255.0))


def test_ssim_drops_for_noisy_images():
    real = np.repeat(np.linspace(0, 255, 32, dtype=np.uint8)[None, None, :, None], 32, axis=1).repeat(3, axis=3)
    noisy = (real.astype(int) + np.random.default_rng(0).integers(-40, 41, real.shape)).clip(0, 255).astype(np.uint8)
    assert mean_ssim(noisy, real) < 0.9


def test_pixel_metrics_reject_images_of_different_shapes():
    with pytest.raises(DataError, match="differ in shape"):
        pixel_metrics(_images(0, size=16), _images(1, size=24))


def test_pixel_metrics_reject_float_images():
    with pytest.raises(DataError, match="uint8"):
        mean_l1(_images(0).astype(np.float32), _images(1))


def test_fid_with_fewer_images_than_features_matches_the_covariance_formula() -> None:
    rng = np.random.default_rng(3)
    small, other = rng.normal(size=(30, 2048)), rng.normal(size=(25, 2048)) * 1.5 + 0.3
    through_covariances = frechet_distance(*feature_statistics(small), *feature_statistics(other))
    assert fid_from_features(small, other) == pytest.approx(through_covariances, rel=1e-6)
