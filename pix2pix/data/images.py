"""Decoding images robustly and resizing photo/mask pairs to the training size.

Every image is fully decoded (a truncated file fails here, not in the middle of training), turned
upright by its EXIF orientation and normalised to 8-bit RGB. Masks are only ever resized with NEAREST
so that class colours never blend.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps

from pix2pix.errors import DataError

# Pillow's own guard against decompression bombs (about 179 megapixels) becomes an error, not a warning.
MAX_IMAGE_PIXELS = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else 178_956_970


def open_image(data: bytes, source: str) -> Image.Image:
    """Open and fully decode ``data``, upright by its EXIF orientation; :class:`DataError` naming ``source``."""
    return _open(data, source, None)[0]


def _open(data: bytes, source: str, at_least_hw: tuple[int, int] | None) -> tuple[Image.Image, tuple[int, int]]:
    """Decode ``data`` upright; return the image and its stored size ``(W, H)`` (after the EXIF turn).

    With ``at_least_hw``, a JPEG is decoded at the smallest DCT scale that keeps both sides at least that
    large (Pillow's ``draft``), so a 6000x4000 photo bound for 256 px never exists at full size in memory.
    """
    # Pillow reads its limit from a module global at open time: set ours for this call only.
    previous_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            stored = image.size
            if at_least_hw is not None and image.format == "JPEG":
                # EXIF may turn the image by 90 degrees: ask for the longer target side both ways.
                side = max(at_least_hw)
                image.draft(image.mode, (side, side))
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise DataError(f"{source}: refused as a decompression bomb ({error})") from error
    except Exception as error:  # PIL raises many types (OSError, SyntaxError, ValueError) for bad files
        raise DataError(f"{source}: cannot be decoded as an image ({error}); replace or delete the file") from error
    finally:
        Image.MAX_IMAGE_PIXELS = previous_limit
    loaded = image.size
    ImageOps.exif_transpose(image, in_place=True)
    return image, stored if image.size == loaded else (stored[1], stored[0])


def reduce_to(image: Image.Image, at_least_hw: tuple[int, int]) -> Image.Image:
    """Shrink ``image`` by the largest integer factor that keeps both sides at least ``at_least_hw``.

    Pillow's ``reduce`` averages factor x factor blocks (a proper anti-aliased downscale) and is much
    cheaper than a bicubic resize from full size; the final resize to the training size then starts small.
    """
    factor = min(image.width // max(1, at_least_hw[1]), image.height // max(1, at_least_hw[0]))
    if factor < 2:
        return image
    if image.mode not in ("L", "LA", "RGB", "RGBA", "I", "F"):
        image = image.convert("RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB")
    return image.reduce(factor)


def _to_8bit(image: Image.Image) -> Image.Image:
    """Map 16/32-bit integer and float greyscale images to 8-bit 'L' by their full value range."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(array.max()), 1.0)
        return Image.fromarray(np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    return image


def decode_rgb(data: bytes, source: str) -> np.ndarray:
    """Decode a photo to ``(H, W, 3)`` uint8 RGB at its full size (see :func:`decode_photo`)."""
    return decode_photo(data, source)[0]


def decode_photo(data: bytes, source: str, at_least_hw: tuple[int, int] | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode a photo to ``(H, W, 3)`` uint8 RGB; return it with its stored size ``(H, W)`` (after EXIF turns).

    Palette, greyscale and 16-bit images are converted; transparent pixels (RGBA, LA, P with
    transparency) are composited onto black, the colour of the mask background. With ``at_least_hw`` the
    photo comes back shrunk by an integer factor (JPEG ``draft``, then ``reduce``) but no smaller than that.
    """
    image, stored_wh = _open(data, source, at_least_hw)
    image = _to_8bit(image)
    if at_least_hw is not None:
        image = reduce_to(image, at_least_hw)
    if image.mode == "P":
        image = image.convert("RGBA")
    # Compositing is needed only where some pixel is see-through (the Kaggle photos are RGBA, mostly opaque).
    if image.mode in ("RGBA", "LA", "PA") and image.getchannel("A").getextrema()[0] < 255:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8), (stored_wh[1], stored_wh[0])


def resize_pair(
    photo: np.ndarray, mask: np.ndarray, size_hw: tuple[int, int], policy: str
) -> tuple[np.ndarray, np.ndarray]:
    """Resize a photo (bicubic) and its aligned mask (nearest) to ``size_hw`` with one shared geometry.

    ``photo`` is ``(H, W, 3)`` uint8; ``mask`` is ``(H, W)`` or ``(H, W, 3)`` uint8 of the same H, W.
    ``stretch`` ignores the aspect ratio (like the seed archive); ``pad`` fits the image inside and pads
    with black (class 0); ``crop`` covers the target and cuts the centre.
    """
    if photo.shape[:2] != mask.shape[:2]:
        raise DataError(f"photo is {photo.shape[1]}x{photo.shape[0]} but its mask is {mask.shape[1]}x{mask.shape[0]}")
    return (
        resize_image(photo, size_hw, policy, Image.Resampling.BICUBIC),
        resize_image(mask, size_hw, policy, Image.Resampling.NEAREST),
    )


def resize_image(array: np.ndarray, size_hw: tuple[int, int], policy: str, resample: Image.Resampling) -> np.ndarray:
    """Resize one ``(H, W[, C])`` uint8 array to ``size_hw`` under ``policy`` (see :func:`resize_pair`)."""
    target_h, target_w = size_hw
    height, width = array.shape[:2]
    image = Image.fromarray(array)
    if policy == "stretch":
        return np.asarray(image.resize((target_w, target_h), resample))
    if policy not in ("pad", "crop"):
        raise DataError(f"unknown resize policy {policy!r}; use stretch, pad or crop")
    pick = min if policy == "pad" else max
    scale = pick(target_w / width, target_h / height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    scaled = np.asarray(image.resize((new_w, new_h), resample))
    canvas = np.zeros((target_h, target_w) + array.shape[2:], dtype=np.uint8)
    top, left = (target_h - new_h) // 2, (target_w - new_w) // 2
    # Negative offsets (crop) select the centre of the scaled image; positive ones (pad) place it centred.
    src = scaled[max(0, -top) : max(0, -top) + min(new_h, target_h), max(0, -left) : max(0, -left) + min(new_w, target_w)]
    canvas[max(0, top) : max(0, top) + src.shape[0], max(0, left) : max(0, left) + src.shape[1]] = src
    return canvas


def encode_png(array: np.ndarray) -> bytes:
    """Encode a uint8 ``(H, W[, 3])`` array as PNG bytes (lossless: masks stay exact)."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()
