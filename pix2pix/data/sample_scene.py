"""The embedded sample's street scenes: every pixel labelled, so the mask determines the photo up to texture.

A scene is a side view of a street: sky above a skyline of buildings and trees, a strip of grass and pavement,
the road at the bottom, and one or two toy cars (:mod:`pix2pix.data.sample_car`) on the road. Each class has its
own real texture family from scikit-image's bundled photographs (brick walls, grass, gravel asphalt, paving cut
from the brick texture at a smaller scale), tinted and lit per scene; the sky is a graded blue with soft clouds.
Everything with a shape follows from the mask: each building's windows sit on a grid anchored at its own top-left
corner, the lane dashes run along the middle of the road from the left edge. What a network cannot infer from the
mask is only the fine texture, the clouds, the lighting and the car colours.

Class ids: 0 sky, 1..4 the car parts with the ids of the car data (body, wheel, lights, window), 5 road,
6 pavement, 7 building, 8 vegetation, 9 grass. :data:`SCENE_PALETTE` colours them (the car parts keep the car
data's colours).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from pix2pix.data.palette import CAR_CLASSES, CAR_PALETTE
from pix2pix.data.sample_car import paint_car, sample_car
from pix2pix.errors import ConfigError

SCENE_CLASSES: tuple[str, ...] = ("sky", *CAR_CLASSES[1:], "road", "pavement", "building", "vegetation", "grass")
SKY, BODY, WHEEL, LIGHTS, WINDOW, ROAD, PAVEMENT, BUILDING, VEGETATION, GRASS = range(len(SCENE_CLASSES))
# Cityscapes' colours for the scene classes (sky, road, sidewalk, building, vegetation, terrain), the car data's
# colours for the car parts.
SCENE_PALETTE: tuple[tuple[int, int, int], ...] = (
    (70, 130, 180), *CAR_PALETTE[1:], (128, 64, 128), (244, 35, 232), (70, 70, 70), (107, 142, 35), (152, 251, 152),
)
MIN_SIDE_PX = 32

# One wall family (sandstone brick; per-scene jitter only: a tint the mask cannot tell would be averaged into
# brown) and dark window glass.
_WALL_TINT = (0.92, 0.74, 0.56)
_WINDOW_GLASS = np.array([40.0, 52.0, 66.0], dtype=np.float32)
# Window grid of every building as fractions of the image (pitch) and of the pitch (window size, first offset).
_WINDOW_PITCH = (0.085, 0.09)  # (y of H, x of W)
_WINDOW_SIZE = (0.55, 0.5)
_WINDOW_OFFSET = 0.3
_LANE_AT = 0.5  # the lane dashes' line, as a fraction of the road's height below its top


@functools.lru_cache(maxsize=1)
def load_textures() -> Mapping[str, np.ndarray]:
    """scikit-image's real grey textures, read-only and loaded once: ``brick``, ``grass``, ``gravel`` (512², uint8)."""
    from skimage import data  # local: scikit-image is slow to import and only the sample needs it

    textures = {"brick": data.brick(), "grass": data.grass(), "gravel": data.gravel()}
    for texture in textures.values():
        texture.setflags(write=False)
    return textures


def render_street_scene(
    rng: np.random.Generator, size_hw: tuple[int, int], textures: Mapping[str, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Render one street scene of ``size_hw = (H, W)`` (both ≥ 32) from ``rng``.

    Returns ``(photo, mask)``: photo uint8 ``(H, W, 3)``, mask uint8 ``(H, W)`` with a class of
    :data:`SCENE_CLASSES` at every pixel (the class drawn at the pixel's centre). ``textures`` defaults to
    :func:`load_textures`. All randomness comes from ``rng``, so a seeded generator gives identical scenes.
    """
    height, width = size_hw
    if min(height, width) < MIN_SIDE_PX:
        raise ConfigError(f"a street scene needs both sides >= {MIN_SIDE_PX} px, got {size_hw!r}")
    textures = load_textures() if textures is None else textures
    mask, layout = _label_layout(rng, size_hw)
    photo = _paint_surfaces(rng, mask, layout, textures)
    road_top = layout["road_top"]
    # One or two cars; the farther one (higher ground line) is painted first so the nearer one hides it.
    grounds = sorted(rng.uniform(road_top + 0.3 * (height - road_top), 0.98 * height, 1 + int(rng.random() < 0.4)))
    for ground_y in grounds:
        paint_car(photo, mask, sample_car(rng, size_hw, (ground_y, ground_y), 0.9 * width), rng)
    photo *= np.float32(rng.uniform(0.85, 1.1))  # exposure
    photo = np.clip(np.rint(photo), 0, 255).astype(np.uint8)
    if rng.random() < 0.5:  # the street seen from its other side
        photo, mask = photo[:, ::-1], mask[:, ::-1]
    return np.ascontiguousarray(photo), np.ascontiguousarray(mask)


def _label_layout(rng: np.random.Generator, size_hw: tuple[int, int]) -> tuple[np.ndarray, dict[str, Any]]:
    """The scene's class map without cars, uint8 ``(H, W)``, and its geometry in output px: ``horizon``,
    ``road_top`` and ``buildings``, a list of ``(top, left)`` corners.

    Bands from the top: sky, the skyline (buildings, trees) standing on the horizon, grass then pavement,
    the road from ``road_top`` down.
    """
    height, width = size_hw
    horizon = rng.uniform(0.42, 0.56) * height
    road_top = horizon + rng.uniform(0.08, 0.16) * height
    grass_bottom = horizon + rng.uniform(0.0, 0.6) * (road_top - horizon)
    ys = np.arange(height, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(width, dtype=np.float32)[None, :] + 0.5
    mask = np.full((height, width), SKY, dtype=np.uint8)
    mask[np.broadcast_to(ys >= horizon, mask.shape)] = GRASS
    mask[np.broadcast_to(ys >= grass_bottom, mask.shape)] = PAVEMENT
    mask[np.broadcast_to(ys >= road_top, mask.shape)] = ROAD
    x = rng.uniform(-0.2, 0.0) * width
    buildings = []
    while x < width:  # a row of buildings of random widths and heights, with gaps
        building_w = rng.uniform(0.18, 0.45) * width
        top = horizon - rng.uniform(0.15, 0.38) * height
        if rng.random() < 0.8:
            mask[(ys >= top) & (ys < horizon) & (xs >= x) & (xs < x + building_w)] = BUILDING
            buildings.append((top, x))
        x += building_w + rng.uniform(0.0, 0.12) * width
    for _ in range(int(rng.integers(1, 4))):  # trees in front of the buildings: a trunk and a round canopy
        centre_x = rng.uniform(0.0, 1.0) * width
        radius = rng.uniform(0.06, 0.13) * height
        centre_y = horizon - rng.uniform(1.2, 2.2) * radius
        trunk = (np.abs(xs - centre_x) < 0.12 * radius) & (ys >= centre_y) & (ys < horizon)
        canopy = ((xs - centre_x) / (1.1 * radius)) ** 2 + ((ys - centre_y) / radius) ** 2 < 1.0
        mask[trunk | canopy] = VEGETATION
    return mask, {"horizon": horizon, "road_top": road_top, "buildings": buildings}


def _paint_surfaces(
    rng: np.random.Generator, mask: np.ndarray, layout: Mapping[str, Any], textures: Mapping[str, np.ndarray]
) -> np.ndarray:
    """The photo of the scene without cars: float32 ``(H, W, 3)`` in 0..255, each class from its own texture."""
    height, width = mask.shape
    scale = 256.0 / max(height, width)  # texture detail per scene pixel, the same at every sample size
    surfaces = {
        SKY: _sky(rng, (height, width)),
        ROAD: _texture(rng, textures["gravel"], (height, width), 2.0 * scale, (0.42, 0.42, 0.45), 0.12, 0.45),
        PAVEMENT: _texture(rng, textures["brick"], (height, width), 0.7 * scale, (0.85, 0.80, 0.74), 0.1),
        BUILDING: _building(rng, mask, layout["buildings"], textures["brick"], 1.2 * scale),
        VEGETATION: _texture(rng, textures["grass"], (height, width), 1.0 * scale, (0.30, 0.52, 0.20), 0.15),
        GRASS: _texture(rng, textures["grass"], (height, width), 2.0 * scale, (0.55, 0.80, 0.35), 0.15),
    }
    photo = np.zeros((height, width, 3), dtype=np.float32)
    for label, surface in surfaces.items():
        photo[mask == label] = surface[mask == label]
    # Lane dashes: painted on the road (still road class), along its middle, starting at the left edge.
    lane_y = int(layout["road_top"] + _LANE_AT * (height - layout["road_top"]))
    dash = max(2, width // 10)
    thickness = max(1, height // 64)
    columns = (np.arange(width) // dash) % 2 == 0
    lane = photo[lane_y : lane_y + thickness]
    lane[:, columns] = lane[:, columns] * 0.3 + np.float32(0.7 * 225.0)
    return photo


def _texture(
    rng: np.random.Generator,
    source: np.ndarray,
    size_hw: tuple[int, int],
    source_px_per_px: float,
    tint: tuple[float, float, float],
    tint_jitter: float,
    contrast: float = 1.0,
) -> np.ndarray:
    """A random crop of grey ``source`` covering ``source_px_per_px`` texture pixels per output pixel, resized to
    ``size_hw``, its contrast about the mean scaled by ``contrast``, and tinted (``tint`` ± ``tint_jitter`` per
    channel): float32 ``(H, W, 3)`` in 0..255."""
    height, width = size_hw
    crop_h = min(source.shape[0], height * source_px_per_px)
    crop_w = min(source.shape[1], width * source_px_per_px)
    top = rng.uniform(0, source.shape[0] - crop_h)
    left = rng.uniform(0, source.shape[1] - crop_w)
    image = Image.fromarray(np.ascontiguousarray(source))
    crop = image.resize((width, height), Image.Resampling.BILINEAR, box=(left, top, left + crop_w, top + crop_h))
    colour = np.array(tint, dtype=np.float32) * rng.uniform(1 - tint_jitter, 1 + tint_jitter, 3).astype(np.float32)
    grey = np.asarray(crop, dtype=np.float32)
    grey = grey.mean() + np.float32(contrast) * (grey - grey.mean())
    return grey[..., None] * colour


def _sky(rng: np.random.Generator, size_hw: tuple[int, int]) -> np.ndarray:
    """Blue, paler towards the horizon, with soft white clouds: float32 ``(H, W, 3)`` in 0..255."""
    height, width = size_hw
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    zenith = np.array([60, 110, 190], dtype=np.float32) * rng.uniform(0.85, 1.1)
    horizon = np.array([185, 210, 235], dtype=np.float32) * rng.uniform(0.9, 1.05)
    sky = np.broadcast_to(zenith * (1 - t) + horizon * t, (height, width, 3)).copy()
    # Clouds: smoothed noise on a grid of 1/8 of the size, upsampled (the same look at a fraction of the cost).
    coarse = rng.normal(size=(max(4, height // 8), max(4, width // 8))).astype(np.float32)
    coarse = ndimage.gaussian_filter(coarse, sigma=2.0, mode="wrap")
    noise = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC))
    clouds = np.clip((noise / (noise.std() + 1e-6) - rng.uniform(0.3, 1.2)) * 0.6, 0.0, 1.0)[..., None]
    return sky * (1 - clouds) + np.float32(242.0) * clouds


def _building(
    rng: np.random.Generator,
    mask: np.ndarray,
    corners: list[tuple[float, float]],
    brick: np.ndarray,
    source_px_per_px: float,
) -> np.ndarray:
    """Walls: tinted brick with dark windows and a light from one side: float32 ``(H, W, 3)``.

    Every building at ``corners`` (``(top, left)`` in px) gets its own window grid of fixed pitch, anchored at
    its corner, so where the windows are follows from the building's outline in the mask.
    """
    height, width = mask.shape
    wall = _texture(rng, brick, (height, width), source_px_per_px, _WALL_TINT, 0.08)
    pitch_y, pitch_x = _WINDOW_PITCH[0] * height, _WINDOW_PITCH[1] * width
    ys = np.arange(height, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(width, dtype=np.float32)[None, :] + 0.5
    left_to_right = sorted(corners, key=lambda corner: corner[1])
    owner = np.full((height, width), -1, dtype=np.int64)  # which building's grid a pixel follows: the nearest on its left
    for index, (_, left) in enumerate(left_to_right):
        owner[np.broadcast_to(xs >= left, owner.shape)] = index
    windows = np.zeros((height, width), dtype=bool)
    for index, (top, left) in enumerate(left_to_right):
        row = (ys - top) / pitch_y - _WINDOW_OFFSET
        column = (xs - left) / pitch_x - _WINDOW_OFFSET
        inside = (row >= 0) & (row % 1 < _WINDOW_SIZE[0]) & (column >= 0) & (column % 1 < _WINDOW_SIZE[1])
        windows |= inside & (owner == index)
    wall[windows] = _WINDOW_GLASS * np.float32(rng.uniform(0.8, 1.5))
    side_light = np.linspace(1.08, 0.85, width, dtype=np.float32)[None, :, None]
    return wall * (side_light if rng.random() < 0.5 else side_light[:, ::-1])
