"""Build small datasets in the real layouts (and hostile variants) inside a test's tmp_path.

Photos are crops of real images that scikit-image ships; nothing binary is committed.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as skdata

from pix2pix.data.palette import CAR_CLASSES, CAR_PALETTE, build_color_mask

DAYTON_NAMES = (
    "-0ABCDEFGHIJKLMNOPQRST.x1.y-2.a3.jpg",
    "_1abcdefghijklmnopqrst.x-10.y20.a-30.jpg",
    "Z2abcdefghijklmnopqrst.x5.y6.a7.jpg",
    "Z2abcdefghijklmnopqrst.x8.y9.a10.jpg",
    "Y3abcdefghijklmnopqrst.x0.y0.a0.jpg",
    "X4abcdefghijklmnopqrst.x1.y1.a1.jpg",
)


def real_photo(index: int, size_hw: tuple[int, int]) -> np.ndarray:
    """A ``(H, W, 3)`` uint8 crop of a real photo, different for each ``index``."""
    sources = (skdata.astronaut(), skdata.coffee(), skdata.chelsea(), skdata.rocket())
    image = sources[index % len(sources)]
    offset = (index * 37) % 64
    crop = image[offset : offset + image.shape[0] // 2, offset : offset + image.shape[1] // 2]
    return np.asarray(Image.fromarray(crop).resize((size_hw[1], size_hw[0]), Image.Resampling.BILINEAR))


def index_mask(index: int, size_hw: tuple[int, int]) -> np.ndarray:
    """A ``(H, W)`` class-index mask with a body, two wheels, a light and a window."""
    height, width = size_hw
    mask = np.zeros(size_hw, dtype=np.uint8)
    top = height // 3 + index % 5
    mask[top : top + height // 3, width // 8 : width - width // 8] = 1
    mask[top + height // 3 - 4 : top + height // 3 + 2, width // 5 : width // 5 + 6] = 2
    mask[top + height // 3 - 4 : top + height // 3 + 2, width - width // 5 - 6 : width - width // 5] = 2
    mask[top + 2 : top + 5, width - width // 8 - 4 : width - width // 8] = 3
    mask[top + 2 : top + 6, width // 3 : width // 2] = 4
    return mask


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(array)
    (image.convert(mode) if mode else image).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    """Write ``members`` (name → bytes) into a zip, folders implied by the names."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def kaggle_members(count: int, nested: bool = False, size_hw: tuple[int, int] = (60, 80)) -> dict[str, bytes]:
    """The Kaggle car-segmentation layout; names with literal %20 and parentheses; optionally nested twice."""
    base = "car-segmentation/car-segmentation/" if nested else "car-segmentation/"
    members = {f"{base}classes.txt": "\n".join(CAR_CLASSES).encode()}
    for i in range(count):
        name = f"car%20{i:02d} (copy)"
        photo = real_photo(i, size_hw)
        mode = "RGBA" if i == 0 else None
        members[f"{base}images/{name}.png"] = png_bytes(photo, mode)
        members[f"{base}masks/{name}.png"] = png_bytes(index_mask(i, size_hw), "L")
    return members


def seed_members(count: int, size: int = 64) -> dict[str, bytes]:
    """The seed archive layout: car-segmentation/train/<name>.png = photo | colour mask."""
    members = {"car-segmentation/": b"", "car-segmentation/train/": b""}
    for i in range(count):
        colour = build_color_mask(index_mask(i, (size, size)), CAR_PALETTE)
        members[f"car-segmentation/train/{i:03d}.png"] = png_bytes(np.concatenate([real_photo(i, (size, size)), colour], axis=1))
    return members


def dayton4_members(street_first: bool, size: int = 48) -> dict[str, bytes]:
    """Dayton 4-panel images; the street panel has a bright sky over a dark road, the aerial one does not."""
    members = {}
    for i, name in enumerate(DAYTON_NAMES):
        street = np.zeros((size, size, 3), dtype=np.uint8)
        street[: size // 2] = (200, 220, 250)
        street[size // 2 :] = (40 + i, 40, 40)
        aerial = real_photo(i, (size, size)) // 2 + 60
        seg = np.zeros_like(street)
        panels = [street, aerial, seg, seg] if street_first else [aerial, street, seg, seg]
        members[f"dayton/{name}"] = jpeg_bytes(np.concatenate(panels, axis=1))
    return members


def dayton2_members(size: int = 40) -> dict[str, bytes]:
    """Dayton raw layout: <prefix>.streetview.jpg + <prefix>.overhead.jpg."""
    members = {}
    for i, name in enumerate(DAYTON_NAMES[:4]):
        prefix = name[: -len("jpg")]
        members[f"raw/{prefix}streetview.jpg"] = jpeg_bytes(real_photo(i, (size, size)))
        members[f"raw/{prefix}overhead.jpg"] = jpeg_bytes(real_photo(i + 1, (size, size)))
    return members


def ab_folder(root: Path, count: int = 6, size: int = 32) -> Path:
    """A pix2pix-style A|B folder with train/ and test/ subfolders (same file name in both)."""
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
        for i in range(count // 2):
            pair = np.concatenate([real_photo(i, (size, size)), real_photo(i + 2, (size, size))], axis=1)
            (root / split / f"{i + 1}.jpg").write_bytes(jpeg_bytes(pair))
    return root


def street_labels(index: int, size_hw: tuple[int, int], classes: int = 12) -> np.ndarray:
    """A ``(H, W)`` uint8 label map with every id ``0..classes-1`` in vertical bands, shifted by ``index``."""
    columns = (np.arange(size_hw[1]) * classes // size_hw[1] + index) % classes
    return np.repeat(columns[None, :], size_hw[0], axis=0).astype(np.uint8)


def camvid_folder(root: Path, counts: dict[str, int] | None = None, size_hw: tuple[int, int] = (36, 48)) -> Path:
    """SegNet's CamVid (datasets.md): ``X/`` RGB PNG photos beside ``Xannot/`` mode-L ids 0..11 (11 = void)."""
    for split, count in (counts or {"train": 3, "val": 1, "test": 2}).items():
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        for i in range(count):
            name = f"0001TP_{split}{i:04d}.png"
            (root / split / name).write_bytes(png_bytes(real_photo(i, size_hw)))
            (root / f"{split}annot" / name).write_bytes(png_bytes(street_labels(i, size_hw), "L"))
    return root


def cityscapes_folder(root: Path, size_hw: tuple[int, int] = (32, 64)) -> Path:
    """Cityscapes as published (datasets.md): ``leftImg8bit/<split>/<city>/<x>_leftImg8bit.png`` + ``gtFine/...``.

    Beside each ``_gtFine_labelIds.png`` lie the ``_color.png`` and ``_instanceIds.png`` files the real set ships.
    train and val label maps hold every labelId 0..33 of cityscapesScripts' ``labels.py`` in vertical bands
    (ignore labels such as 'ego vehicle' 1 and 'out of roi' 3 among them; 'license plate', id -1, is never in a
    PNG); the ``test`` maps are all 0 ('unlabeled'), as the public release has them.
    """
    for split, city, count in (("train", "aachen", 2), ("val", "frankfurt", 1), ("test", "berlin", 1)):
        photos, labels = root / "leftImg8bit" / split / city, root / "gtFine" / split / city
        photos.mkdir(parents=True)
        labels.mkdir(parents=True)
        for i in range(count):
            stem = f"{city}_{i:06d}_000019"
            (photos / f"{stem}_leftImg8bit.png").write_bytes(png_bytes(real_photo(i, size_hw)))
            ids = np.zeros(size_hw, dtype=np.uint8) if split == "test" else street_labels(i, size_hw, classes=34)
            (labels / f"{stem}_gtFine_labelIds.png").write_bytes(png_bytes(ids, "L"))
            (labels / f"{stem}_gtFine_color.png").write_bytes(png_bytes(real_photo(i + 1, size_hw)))
            (labels / f"{stem}_gtFine_instanceIds.png").write_bytes(png_bytes(ids.astype(np.uint16) * 1000))
    return root


def label_folder(root: Path, photo_dir: str, label_dir: str, count: int = 3, size_hw: tuple[int, int] = (30, 40)) -> Path:
    """``root/<photo_dir>/<i>.jpg`` photos and ``root/<label_dir>/<i>.png`` mode-L label maps with ids 0..5."""
    (root / photo_dir).mkdir(parents=True)
    (root / label_dir).mkdir(parents=True)
    for i in range(count):
        (root / photo_dir / f"{i:03d}.jpg").write_bytes(jpeg_bytes(real_photo(i, size_hw)))
        (root / label_dir / f"{i:03d}.png").write_bytes(png_bytes(street_labels(i, size_hw, classes=6), "L"))
    return root
