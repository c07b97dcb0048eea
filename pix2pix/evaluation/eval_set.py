"""The eval set: which test pairs every evaluation scores (the reference features, each epoch, the segmenter's ceiling)."""

from __future__ import annotations

import numpy as np

from pix2pix.errors import DataError


def eval_indices(count: int, num_images: int, seed: int) -> np.ndarray:
    """A fixed, seeded subset of ``min(count, num_images)`` test indices (all of them when ``num_images`` <= 0), sorted."""
    if count < 1:
        raise DataError("the test split is empty: lower data.test_fraction's floor or add data")
    if num_images <= 0 or num_images >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, size=num_images, replace=False))
