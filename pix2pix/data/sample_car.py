"""A toy side-view car for the embedded sample: geometry, class layers and shading, painted into a scene.

The car is drawn as geometry first: a class-index layer (1..4 = body, wheel, lights, window; the ids of
:data:`pix2pix.data.palette.CAR_CLASSES`) and a flat-colour layer from the *same* shapes, at ``SUPERSAMPLE`` × the
output size. It is then shaded, composited over the scene (with a ground shadow) and box-downsampled, so the photo
is antialiased while the mask takes the class at each output pixel's centre — the mask is the rendering's own
label, never a blend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from pix2pix.data.palette import CAR_CLASSES

# Output pixels are rendered as SUPERSAMPLE × SUPERSAMPLE sub-pixels; odd so that one sub-pixel sits
# exactly at each output pixel's centre (that sub-pixel's class is the mask label).
SUPERSAMPLE = 3
NO_CAR, BODY_CLASS, WHEEL_CLASS, LIGHT_CLASS, WINDOW_CLASS = range(len(CAR_CLASSES))

_BODY_COLOURS: tuple[tuple[int, int, int], ...] = (
    (200, 30, 30), (125, 20, 28), (30, 70, 170), (22, 38, 85), (232, 232, 228), (176, 179, 184),
    (96, 99, 105), (30, 30, 34), (238, 196, 40), (40, 120, 62), (228, 108, 30), (28, 138, 150),
)
_RIM_COLOURS: tuple[tuple[int, int, int], ...] = ((196, 198, 202), (150, 152, 158), (64, 66, 70), (220, 214, 200))
_FRONT_LIGHT_COLOURS: tuple[tuple[int, int, int], ...] = ((255, 214, 90), (250, 248, 232))
_REAR_LIGHT_COLOUR = (212, 26, 32)
# (rear-base, rear-top, front-top, front-base) x of the cabin as fractions of the car length, each a
# (low, high) range, and the cabin height as a fraction of the length, for a few body styles.
_STYLES: dict[str, dict[str, tuple[float, float]]] = {
    "sedan": {"rear_base": (0.12, 0.20), "rear_top": (0.27, 0.34), "front_top": (0.57, 0.64),
              "front_base": (0.71, 0.77), "cabin_h": (0.12, 0.16), "hull_h": (0.17, 0.22)},
    "hatchback": {"rear_base": (0.02, 0.06), "rear_top": (0.08, 0.14), "front_top": (0.55, 0.62),
                  "front_base": (0.70, 0.76), "cabin_h": (0.14, 0.19), "hull_h": (0.19, 0.24)},
    "van": {"rear_base": (0.01, 0.03), "rear_top": (0.03, 0.06), "front_top": (0.62, 0.72),
            "front_base": (0.78, 0.85), "cabin_h": (0.19, 0.25), "hull_h": (0.21, 0.26)},
    "coupe": {"rear_base": (0.12, 0.20), "rear_top": (0.34, 0.42), "front_top": (0.54, 0.60),
              "front_base": (0.71, 0.77), "cabin_h": (0.10, 0.13), "hull_h": (0.15, 0.19)},
}

Point = tuple[float, float]


@dataclass(frozen=True)
class Car:
    """One car's geometry (output-pixel coordinates, facing right, y down) and colours."""

    hull: list[Point]
    cabin: list[Point]
    windows: list[list[Point]]
    seams: list[tuple[Point, Point]]
    front_light: list[Point]
    rear_light: list[Point]
    wheels: list[tuple[float, float, float]]  # (centre x, centre y, radius)
    rim_ratio: float
    roof_y: float
    belt_y: float
    hull_bottom_y: float
    ground_y: float
    x0: float
    length: float
    body_rgb: tuple[int, int, int]
    glass_rgb: tuple[int, int, int]
    front_light_rgb: tuple[int, int, int]
    tyre_rgb: tuple[int, int, int]
    rim_rgb: tuple[int, int, int]
    reflection_at: float
    shadow_strength: float
    grain: float


def paint_car(photo: np.ndarray, mask: np.ndarray, car: Car, rng: np.random.Generator) -> None:
    """Paint ``car`` into the scene, in place: its shadow and antialiased pixels into ``photo``, its classes into ``mask``.

    ``photo`` is float32 ``(H, W, 3)`` in 0..255, ``mask`` uint8 ``(H, W)`` class ids; pixels whose centre the car
    covers get its part's class (1..4), the others keep theirs. The sensor grain comes from ``rng``.
    """
    _darken_with_shadow(photo, car)
    x_lo, x_hi, y_lo, y_hi = _car_box(car, mask.shape)
    index_fine, flat_fine = _draw_car(car, (x_lo, y_lo), (x_hi - x_lo, y_hi - y_lo))
    rgb_fine = _shade_car(car, index_fine, flat_fine, (x_lo, y_lo))
    labels = index_fine[SUPERSAMPLE // 2 :: SUPERSAMPLE, SUPERSAMPLE // 2 :: SUPERSAMPLE]
    region_mask = mask[y_lo:y_hi, x_lo:x_hi]
    region_mask[labels != NO_CAR] = labels[labels != NO_CAR]
    region = photo[y_lo:y_hi, x_lo:x_hi]
    coverage, car_rgb = _downsample_car(index_fine, rgb_fine)
    grain = rng.normal(0.0, car.grain, size=car_rgb.shape).astype(np.float32)
    region[...] = region * (1.0 - coverage[..., None]) + car_rgb + grain * coverage[..., None]


def sample_car(
    rng: np.random.Generator, size_hw: tuple[int, int], ground_y_range: tuple[float, float], max_length: float
) -> Car:
    """Draw a random car standing on a ground line in ``ground_y_range`` (output px, y down) in an image of
    ``size_hw``, at most ``max_length`` px long (and never taller than the space above its ground line); see
    :class:`Car`."""
    width = size_hw[1]
    style_name = str(rng.choice(sorted(_STYLES)))
    style = _STYLES[style_name]

    def pick(key: str) -> float:
        low, high = style[key]
        return float(rng.uniform(low, high))

    hull_ratio, cabin_ratio = pick("hull_h"), pick("cabin_h")
    wheel_ratio = hull_ratio * rng.uniform(0.42, 0.54)
    clearance_ratio = wheel_ratio * rng.uniform(0.5, 0.7)
    height_ratio = clearance_ratio + hull_ratio + cabin_ratio
    ground_y = rng.uniform(*ground_y_range)
    # Between half and all of max_length, but the roof stays inside the picture.
    length = min(rng.uniform(0.5, 1.0) * max_length, 0.9 * ground_y / height_ratio)
    hull_h, cabin_h, radius = hull_ratio * length, cabin_ratio * length, wheel_ratio * length
    if rng.random() < 0.15:  # partly outside the frame, like a car crossing the picture's edge
        x0 = rng.uniform(-0.3 * length, width - 0.7 * length)
    else:
        margin = 0.02 * width
        x0 = rng.uniform(margin, max(margin, width - length - margin))
    bottom_y = ground_y - clearance_ratio * length
    belt_y = bottom_y - hull_h
    roof_y = belt_y - cabin_h
    cabin_x = [x0 + pick(key) * length for key in ("rear_base", "rear_top", "front_top", "front_base")]
    hood_y = belt_y + rng.uniform(0.05, 0.3) * hull_h
    nose_x = x0 + length - rng.uniform(0.04, 0.09) * length
    hull = _rounded_polygon(
        [(x0 + 0.01 * length, bottom_y), (x0, belt_y + 0.08 * hull_h), (cabin_x[3], belt_y), (nose_x, hood_y),
         (x0 + length, belt_y + 0.55 * hull_h), (x0 + length - 0.015 * length, bottom_y)],
        [0.25 * hull_h, 0.35 * hull_h, 0.2 * hull_h, 0.5 * hull_h, 0.3 * hull_h, 0.25 * hull_h],
    )
    cabin_base_y = belt_y + 0.1 * hull_h  # overlaps the hull so the two merge into one body
    cabin_corners = [(cabin_x[0], cabin_base_y), (cabin_x[1], roof_y), (cabin_x[2], roof_y), (cabin_x[3], cabin_base_y)]
    roof_radii = (0.4 * cabin_h, 0.3 * cabin_h)
    cabin = _rounded_polygon(cabin_corners, [0.1 * cabin_h, *roof_radii, 0.1 * cabin_h])
    pillar_w = rng.uniform(0.09, 0.14) * cabin_h + 0.6
    windows, pillars = _windows(cabin_corners, roof_radii, belt_y, pillar_w, 2 if style_name == "van" else 1)
    seam_top, seam_bottom = belt_y + 0.12 * hull_h, bottom_y - 0.12 * hull_h
    seams = [((x, seam_top), (x - 0.03 * hull_h, seam_bottom)) for x in pillars]
    light_h = rng.uniform(0.2, 0.3) * hull_h
    light_y = hood_y + 0.12 * hull_h
    front_light = _rounded_polygon(
        [(nose_x - 0.06 * length, light_y), (nose_x + 0.01 * length, light_y),
         (nose_x + 0.035 * length, light_y + light_h), (nose_x - 0.06 * length, light_y + light_h)],
        [0.3 * light_h] * 4,
    )
    rear_y = belt_y + rng.uniform(0.12, 0.2) * hull_h
    rear_light = _rounded_polygon(
        [(x0 + 0.002 * length, rear_y), (x0 + 0.045 * length, rear_y),
         (x0 + 0.045 * length, rear_y + light_h), (x0 + 0.004 * length, rear_y + light_h)],
        [0.25 * light_h] * 4,
    )
    wheel_y = ground_y - radius
    wheels = [
        (x0 + rng.uniform(0.15, 0.21) * length, wheel_y, radius),
        (x0 + rng.uniform(0.79, 0.85) * length, wheel_y, radius),
    ]
    body = np.array(_BODY_COLOURS[rng.integers(len(_BODY_COLOURS))]) * rng.uniform(0.88, 1.08, 3)
    glass = np.array([62, 78, 96]) * rng.uniform(0.75, 1.3) + rng.uniform(-8, 8, 3)
    tyre = int(rng.integers(22, 46))
    return Car(
        hull=hull, cabin=cabin, windows=windows, seams=seams, front_light=front_light, rear_light=rear_light,
        wheels=wheels, rim_ratio=float(rng.uniform(0.5, 0.68)), roof_y=roof_y, belt_y=belt_y,
        hull_bottom_y=bottom_y, ground_y=ground_y, x0=x0, length=length,
        body_rgb=_rgb(body), glass_rgb=_rgb(glass),
        front_light_rgb=_FRONT_LIGHT_COLOURS[rng.integers(len(_FRONT_LIGHT_COLOURS))],
        tyre_rgb=(tyre, tyre, tyre + 2), rim_rgb=_RIM_COLOURS[rng.integers(len(_RIM_COLOURS))],
        reflection_at=float(rng.uniform(0.2, 0.8)), shadow_strength=float(rng.uniform(0.4, 0.65)),
        grain=float(rng.uniform(1.5, 4.0)),
    )


def _windows(
    cabin: list[Point], roof_radii: tuple[float, float], belt_y: float, pillar_w: float, n_pillars: int
) -> tuple[list[list[Point]], list[float]]:
    """Side windows inside the cabin, split by ``n_pillars`` pillars; returns ``(polygons, pillar x)``.

    ``cabin`` is the (rear base, rear top, front top, front base) trapezoid and ``roof_radii`` the
    rounding of its two roof corners. The glass is that trapezoid inset by ``pillar_w`` (just above the
    beltline at the bottom) with the same roof rounding, so a body-coloured frame stays all round.
    """
    rear_base, rear_top, front_top, front_base = cabin
    top_y, bottom_y = rear_top[1] + pillar_w, belt_y - 0.3 * pillar_w

    def inset(base: Point, top: Point, y: float) -> float:
        """x at height ``y`` of the cabin edge from ``base`` to ``top`` moved ``pillar_w`` inwards (normal to it)."""
        rise = base[1] - top[1]
        shift = pillar_w * math.dist(base, top) / rise * (1 if top[0] > base[0] else -1)
        return base[0] + (top[0] - base[0]) * (base[1] - y) / rise + shift

    rear = [(inset(rear_base, rear_top, y), y) for y in (bottom_y, top_y)]
    front = [(inset(front_base, front_top, y), y) for y in (top_y, bottom_y)]
    left, right = rear[1][0] + 2 * pillar_w, front[0][0] - 2 * pillar_w
    pillars = [left + (right - left) * (i + 1) / (n_pillars + 1) for i in range(n_pillars)]
    starts = [rear] + [[(x + pillar_w / 2, bottom_y), (x + pillar_w / 2, top_y)] for x in pillars]
    ends = [[(x - pillar_w / 2, top_y), (x - pillar_w / 2, bottom_y)] for x in pillars] + [front]
    # Corners are slightly rounded; the outermost ones follow the roof's rounding to stay inside the cabin.
    radii = [[0.6 * pillar_w] * 4 for _ in starts]
    radii[0][1], radii[-1][2] = roof_radii
    windows = [_rounded_polygon(start + end, r) for start, end, r in zip(starts, ends, radii, strict=True)]
    return windows, pillars


def _rounded_polygon(points: list[Point], radii: list[float], steps: int = 6) -> list[Point]:
    """Replace each corner of ``points`` by a quadratic Bézier arc starting ``radius`` before the corner.

    Radii are capped at half of either adjacent edge so neighbouring arcs never cross.
    """
    t = np.linspace(0.0, 1.0, steps + 1)[:, None]
    vertices = np.asarray(points, dtype=np.float64)
    rounded: list[Point] = []
    for i, (corner, radius) in enumerate(zip(vertices, radii, strict=True)):
        before, after = vertices[i - 1], vertices[(i + 1) % len(vertices)]
        radius = min(radius, 0.5 * np.linalg.norm(before - corner), 0.5 * np.linalg.norm(after - corner))
        start, end = _towards(corner, before, radius), _towards(corner, after, radius)
        arc = (1 - t) ** 2 * start + 2 * (1 - t) * t * corner + t**2 * end
        rounded.extend((x, y) for x, y in arc.tolist())
    return rounded


def _towards(origin: np.ndarray, target: np.ndarray, distance: float) -> np.ndarray:
    """The point ``distance`` from ``origin`` on the way to ``target`` (both ``(2,)`` arrays)."""
    return origin + (target - origin) * distance / max(float(np.linalg.norm(target - origin)), 1e-9)


def _rgb(values: np.ndarray) -> tuple[int, int, int]:
    """Round a float RGB triple to a uint8-range tuple for PIL."""
    r, g, b = (int(v) for v in np.clip(np.rint(values), 0, 255))
    return r, g, b


def _darken_with_shadow(photo: np.ndarray, car: Car) -> None:
    """Darken ``photo`` (float ``(H, W, 3)``, in place) with a soft elliptic shadow on the car's ground line."""
    height, width = photo.shape[:2]
    radius = car.wheels[0][2]
    centre_x, centre_y = car.x0 + 0.5 * car.length, car.ground_y - 0.1 * radius
    half_w, half_h = 0.56 * car.length, 0.35 * radius + 1.0
    ys = np.arange(height, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(width, dtype=np.float32)[None, :] + 0.5
    distance = ((xs - centre_x) / half_w) ** 2 + ((ys - centre_y) / half_h) ** 2
    photo *= (1.0 - car.shadow_strength * np.clip(1.0 - distance, 0.0, 1.0) ** 0.6)[..., None]


def _car_box(car: Car, size_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """Output-pixel box ``(x_lo, x_hi, y_lo, y_hi)`` that holds the car, clipped to the image."""
    height, width = size_hw
    xs = [x for x, _ in car.hull + car.front_light]
    x_lo = max(0, math.floor(min(xs)) - 1)
    x_hi = min(width, math.ceil(max(xs)) + 2)
    y_lo = max(0, math.floor(car.roof_y) - 1)
    y_hi = min(height, math.ceil(car.ground_y) + 2)
    return x_lo, max(x_lo + 1, x_hi), y_lo, max(y_lo + 1, y_hi)


def _draw_car(car: Car, origin: tuple[int, int], box_wh: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise the car over the box at ``origin`` (output pixels) at ``SUPERSAMPLE`` × resolution.

    Returns ``(index uint8 (h*S, w*S), flat colours uint8 (h*S, w*S, 3))``. Both layers are drawn from
    the same shapes in the same order, so every sub-pixel's colour belongs to its class.
    """
    scale = SUPERSAMPLE
    size = (box_wh[0] * scale, box_wh[1] * scale)
    index_image, colour_image = Image.new("L", size, 0), Image.new("RGB", size, (0, 0, 0))
    index_draw, colour_draw = ImageDraw.Draw(index_image), ImageDraw.Draw(colour_image)

    def fine(points: list[Point]) -> list[Point]:
        return [((x - origin[0]) * scale, (y - origin[1]) * scale) for x, y in points]

    def polygon(points: list[Point], label: int, colour: tuple[int, int, int]) -> None:
        index_draw.polygon(fine(points), fill=label)
        colour_draw.polygon(fine(points), fill=colour)

    polygon(car.hull, BODY_CLASS, car.body_rgb)
    polygon(car.cabin, BODY_CLASS, car.body_rgb)
    seam_rgb = _rgb(np.array(car.body_rgb) * 0.55)
    for start, end in car.seams:  # door gaps: body class, drawn on the colour layer only
        colour_draw.line(fine([start, end]), fill=seam_rgb, width=max(1, scale // 2))
    for window in car.windows:
        polygon(window, WINDOW_CLASS, car.glass_rgb)
    polygon(car.front_light, LIGHT_CLASS, car.front_light_rgb)
    polygon(car.rear_light, LIGHT_CLASS, _REAR_LIGHT_COLOUR)
    for centre_x, centre_y, radius in car.wheels:
        (centre,) = fine([(centre_x, centre_y)])
        index_draw.ellipse(_disc(centre, radius * scale), fill=WHEEL_CLASS)
        colour_draw.ellipse(_disc(centre, radius * scale), fill=car.tyre_rgb)
        _draw_rim(colour_draw, centre, car.rim_ratio * radius * scale, car.rim_rgb)
    return np.asarray(index_image), np.asarray(colour_image)


def _disc(centre: Point, radius: float) -> tuple[float, float, float, float]:
    """PIL ellipse box of the disc of ``radius`` around ``centre``."""
    return centre[0] - radius, centre[1] - radius, centre[0] + radius, centre[1] + radius


def _draw_rim(draw: ImageDraw.ImageDraw, centre: Point, rim_r: float, rim_rgb: tuple[int, int, int]) -> None:
    """Paint a rim of radius ``rim_r`` with five spokes and a hub inside a tyre.

    Colour layer only: the whole tyre is already wheel class in the index layer.
    """
    draw.ellipse(_disc(centre, rim_r), fill=rim_rgb)
    draw.ellipse(_disc(centre, 0.82 * rim_r), fill=_rgb(np.array(rim_rgb) * 0.45))
    for k in range(5):
        angle = 2 * math.pi * k / 5 - math.pi / 2
        end = (centre[0] + 0.86 * rim_r * math.cos(angle), centre[1] + 0.86 * rim_r * math.sin(angle))
        draw.line([centre, end], fill=rim_rgb, width=max(1, round(0.3 * rim_r)))
    draw.ellipse(_disc(centre, 0.26 * rim_r), fill=_rgb(np.array(rim_rgb) * 0.8))


def _shade_car(car: Car, index: np.ndarray, rgb: np.ndarray, origin: tuple[int, int]) -> np.ndarray:
    """Shade the flat colour layer: body gradient and highlight, dark wheel arches, glass reflection.

    ``index`` uint8 ``(h, w)`` and ``rgb`` uint8 ``(h, w, 3)`` are the fine layers of :func:`_draw_car`
    whose top-left corner is output pixel ``origin``; returns float32 ``(h, w, 3)`` in 0..255.
    """
    shaded = rgb.astype(np.float32)
    for label, shader in ((BODY_CLASS, _shade_body), (WINDOW_CLASS, _shade_glass)):
        rows, cols = np.nonzero(index == label)
        ys = (rows.astype(np.float32) + 0.5) / SUPERSAMPLE + origin[1]
        xs = (cols.astype(np.float32) + 0.5) / SUPERSAMPLE + origin[0]
        shaded[rows, cols] = np.clip(shader(car, ys, xs, shaded[rows, cols]), 0.0, 255.0)
    return shaded


def _shade_body(car: Car, ys: np.ndarray, xs: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Body colours float ``(N, 3)`` at points ``(xs, ys)`` (output pixels), lit from above.

    Bright roof and shoulder, a specular band under the beltline, dark sills, and deep shadow in the
    wheel arches around each tyre.
    """
    hull_h = car.hull_bottom_y - car.belt_y
    depth = np.clip((ys - car.roof_y) / (car.hull_bottom_y - car.roof_y), 0.0, 1.0)
    shade = (1.12 - 0.42 * depth) * (1.0 + 0.06 * (xs - car.x0) / car.length)
    band = 0.35 * np.exp(-(((ys - car.belt_y - 0.22 * hull_h) / (0.1 * hull_h)) ** 2))
    for centre_x, centre_y, radius in car.wheels:
        arch = (xs - centre_x) ** 2 + (ys - centre_y) ** 2 < (1.14 * radius) ** 2
        shade[arch], band[arch] = 0.3, 0.0
    lit = colours * shade[:, None]
    return lit + (255.0 - np.minimum(lit, 255.0)) * band[:, None]


def _shade_glass(car: Car, ys: np.ndarray, xs: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Window colours float ``(N, 3)`` at points ``(xs, ys)``: lighter high, with one diagonal sky reflection."""
    height_t = np.clip((ys - car.roof_y) / (car.belt_y - car.roof_y), 0.0, 1.0)
    diagonal = (xs - car.x0) / car.length + 0.35 * (ys - car.roof_y) / car.length
    streak = 80.0 * np.exp(-(((diagonal - car.reflection_at) / 0.04) ** 2)) + 35.0 * (1.0 - height_t)
    return colours * (1.15 - 0.35 * height_t)[:, None] + streak[:, None]


def _downsample_car(index: np.ndarray, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Box-average the fine layers to output pixels.

    Returns ``(coverage float32 (h, w) in 0..1, car colour premultiplied by coverage float32 (h, w, 3))``,
    so ``background * (1 - coverage) + colour`` equals compositing at the fine scale, then averaging.
    """
    scale = SUPERSAMPLE
    height, width = index.shape[0] // scale, index.shape[1] // scale
    inside = (index > NO_CAR).astype(np.float32)
    coverage = inside.reshape(height, scale, width, scale).mean(axis=(1, 3))
    colour = (rgb * inside[..., None]).reshape(height, scale, width, scale, 3).mean(axis=(1, 3))
    return coverage, colour
