"""The embedded sample: generated car scenes in the seed and Kaggle archive layouts."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from pix2pix.errors import ConfigError
from pix2pix.data.palette import CAR_CLASSES, CAR_PALETTE, build_color_mask
from pix2pix.data.sample import (
    ARCHIVE_ROOT,
    BACKGROUND_CLASS,
    BODY_CLASS,
    KAGGLE_PHOTO_SIZES_HW,
    LIGHT_CLASS,
    WHEEL_CLASS,
    WINDOW_CLASS,
    load_backgrounds,
    render_car_scene,
    scene_rng,
    write_sample_archive,
)

SCENE_HW = (128, 160)
MAGENTA = (255, 0, 255)


def _scenes(count: int, size_hw: tuple[int, int] = SCENE_HW) -> list[tuple[np.ndarray, np.ndarray]]:
    return [render_car_scene(scene_rng(7, i), size_hw, load_backgrounds()) for i in range(count)]


def _read_png(archive: zipfile.ZipFile, name: str) -> Image.Image:
    image = Image.open(io.BytesIO(archive.read(name)))
    image.load()
    return image


def _car_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """``(x_lo, x_hi, y_lo, y_hi)`` (inclusive) of the non-background pixels."""
    ys, xs = np.nonzero(mask != BACKGROUND_CLASS)
    return int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())


@pytest.fixture(scope="module")
def seed_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_archive(tmp_path_factory.mktemp("seed") / "sample.zip", n_pairs=4, seed=3)


@pytest.fixture(scope="module")
def kaggle_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    n_pairs = len(KAGGLE_PHOTO_SIZES_HW) + 1
    return write_sample_archive(tmp_path_factory.mktemp("kaggle") / "sample.zip", n_pairs=n_pairs, layout="kaggle")


def test_same_arguments_give_byte_identical_zips(tmp_path: Path) -> None:
    first = write_sample_archive(tmp_path / "a.zip", n_pairs=3, seed=5)
    second = write_sample_archive(tmp_path / "b.zip", n_pairs=3, seed=5)
    assert first.read_bytes() == second.read_bytes()


def test_other_seed_gives_a_different_zip(tmp_path: Path) -> None:
    first = write_sample_archive(tmp_path / "a.zip", n_pairs=3, seed=5)
    second = write_sample_archive(tmp_path / "b.zip", n_pairs=3, seed=6)
    assert first.read_bytes() != second.read_bytes()


def test_writing_leaves_only_the_archive(tmp_path: Path) -> None:
    out = write_sample_archive(tmp_path / "raw" / "sample.zip", n_pairs=2)
    assert out == tmp_path / "raw" / "sample.zip"
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["sample.zip"]


def test_seed_layout_has_the_seed_archive_members_in_sorted_order(seed_zip: Path) -> None:
    with zipfile.ZipFile(seed_zip) as archive:
        names = archive.namelist()
    pairs = [f"{ARCHIVE_ROOT}/train/sample_{i:04d}.png" for i in range(4)]
    assert names == [f"{ARCHIVE_ROOT}/", f"{ARCHIVE_ROOT}/train/", *pairs]


def test_seed_layout_pairs_are_rgb_512_by_256(seed_zip: Path) -> None:
    with zipfile.ZipFile(seed_zip) as archive:
        images = [_read_png(archive, n) for n in archive.namelist() if n.endswith(".png")]
    assert {(image.mode, image.size) for image in images} == {("RGB", (512, 256))}


def test_seed_layout_pair_is_photo_left_and_colour_mask_right(seed_zip: Path) -> None:
    photo, mask = render_car_scene(scene_rng(3, 2), (256, 256), load_backgrounds())
    with zipfile.ZipFile(seed_zip) as archive:
        pair = np.asarray(_read_png(archive, f"{ARCHIVE_ROOT}/train/sample_0002.png"))
    np.testing.assert_array_equal(pair[:, :256], photo)
    np.testing.assert_array_equal(pair[:, 256:], build_color_mask(mask, CAR_PALETTE))


def test_seed_layout_masks_use_only_palette_colours(seed_zip: Path) -> None:
    with zipfile.ZipFile(seed_zip) as archive:
        halves = [np.asarray(_read_png(archive, n))[:, 256:] for n in archive.namelist() if n.endswith(".png")]
    colours = {tuple(c) for half in halves for c in np.unique(half.reshape(-1, 3), axis=0).tolist()}
    assert colours <= set(CAR_PALETTE)


def test_kaggle_layout_has_images_masks_and_classes(kaggle_zip: Path) -> None:
    with zipfile.ZipFile(kaggle_zip) as archive:
        names = archive.namelist()
        classes = archive.read(f"{ARCHIVE_ROOT}/classes.txt").decode("ascii").splitlines()
    pair_names = [f"sample_{i:04d}.png" for i in range(len(KAGGLE_PHOTO_SIZES_HW) + 1)]
    assert names == [
        f"{ARCHIVE_ROOT}/", f"{ARCHIVE_ROOT}/classes.txt", f"{ARCHIVE_ROOT}/images/",
        *(f"{ARCHIVE_ROOT}/images/{n}" for n in pair_names), f"{ARCHIVE_ROOT}/masks/",
        *(f"{ARCHIVE_ROOT}/masks/{n}" for n in pair_names),
    ]
    assert classes == list(CAR_CLASSES)


def test_kaggle_photos_are_landscape_of_several_sizes_two_of_them_rgba(kaggle_zip: Path) -> None:
    with zipfile.ZipFile(kaggle_zip) as archive:
        photos = [_read_png(archive, n) for n in archive.namelist() if "/images/" in n and n.endswith(".png")]
    assert [p.mode for p in photos] == ["RGBA", "RGBA"] + ["RGB"] * (len(photos) - 2)
    assert {(p.height, p.width) for p in photos} == set(KAGGLE_PHOTO_SIZES_HW)
    assert all(p.width >= p.height for p in photos)


def test_kaggle_masks_are_rgba_with_equal_channels_holding_the_class_id(kaggle_zip: Path) -> None:
    # datasets.md: the published Kaggle masks are RGBA PNGs with R = G = B = class id and A = 255.
    with zipfile.ZipFile(kaggle_zip) as archive:
        for name in (n for n in archive.namelist() if "/masks/" in n and n.endswith(".png")):
            mask = _read_png(archive, name)
            photo = _read_png(archive, name.replace("/masks/", "/images/"))
            assert (mask.mode, mask.size) == ("RGBA", photo.size)
            channels = np.asarray(mask)
            assert (channels[..., 0] == channels[..., 1]).all() and (channels[..., 1] == channels[..., 2]).all()
            assert (channels[..., 3] == 255).all() and int(channels[..., 0].max()) < len(CAR_CLASSES)


def test_kaggle_pair_is_the_rendered_scene(kaggle_zip: Path) -> None:
    photo, mask = render_car_scene(scene_rng(0, 3), KAGGLE_PHOTO_SIZES_HW[3], load_backgrounds())
    with zipfile.ZipFile(kaggle_zip) as archive:
        np.testing.assert_array_equal(np.asarray(_read_png(archive, f"{ARCHIVE_ROOT}/images/sample_0003.png")), photo)
        np.testing.assert_array_equal(np.asarray(_read_png(archive, f"{ARCHIVE_ROOT}/masks/sample_0003.png"))[..., 0], mask)


def test_render_returns_uint8_photo_and_mask_of_the_requested_size() -> None:
    photo, mask = render_car_scene(np.random.default_rng(0), (96, 200), load_backgrounds())
    assert (photo.shape, photo.dtype, mask.shape, mask.dtype) == ((96, 200, 3), np.uint8, (96, 200), np.uint8)


def test_every_class_appears_across_the_scenes() -> None:
    found = set().union(*(np.unique(mask).tolist() for _, mask in _scenes(12)))
    assert found == set(range(len(CAR_CLASSES)))


def test_mask_and_photo_agree_pixel_for_pixel_away_from_edges() -> None:
    # On a flat magenta background (shadow and brightness only scale it) every pixel that the mask calls
    # background, with background all around it, must still be magenta; every pixel inside the car must not.
    backgrounds = [np.tile(np.array(MAGENTA, dtype=np.uint8), (64, 64, 1))]
    for index in range(10):
        photo, mask = render_car_scene(np.random.default_rng(index), SCENE_HW, backgrounds)
        is_magenta = (photo[..., 1] == 0) & (photo[..., 0] == photo[..., 2])
        inside_background = ndimage.binary_erosion(mask == BACKGROUND_CLASS, np.ones((3, 3)))
        inside_car = ndimage.binary_erosion(mask != BACKGROUND_CLASS, np.ones((3, 3)))
        assert inside_background.any() and inside_car.any()
        assert is_magenta[inside_background].all()
        assert not is_magenta[inside_car].any()


def test_car_pixels_hide_the_background_and_background_pixels_show_it() -> None:
    # The same rng stream renders one scene on a dark and on a bright flat background: inside the car
    # nothing may change, inside the background everything must.
    plain = [np.full((64, 64, 3), 40, dtype=np.uint8)]
    bright = [np.full((64, 64, 3), 200, dtype=np.uint8)]
    photo_dark, mask = render_car_scene(np.random.default_rng(11), SCENE_HW, plain)
    photo_bright, _ = render_car_scene(np.random.default_rng(11), SCENE_HW, bright)
    inside_car = ndimage.binary_erosion(mask != BACKGROUND_CLASS, np.ones((3, 3)))
    inside_background = ndimage.binary_erosion(mask == BACKGROUND_CLASS, np.ones((3, 3)))
    np.testing.assert_array_equal(photo_dark[inside_car], photo_bright[inside_car])
    assert (photo_dark[inside_background] < photo_bright[inside_background]).all()


def test_windows_sit_between_roof_and_body() -> None:
    for _, mask in _scenes(10, (256, 256)):
        for column in np.nonzero((mask == WINDOW_CLASS).any(axis=0))[0]:
            rows = np.nonzero(mask[:, column] == WINDOW_CLASS)[0]
            body_rows = np.nonzero(mask[:, column] == BODY_CLASS)[0]
            assert body_rows.min() < rows.min() and body_rows.max() > rows.max()


def test_wheels_are_the_lowest_part_of_every_car() -> None:
    for _, mask in _scenes(12):
        bottom = _car_box(mask)[3]
        assert set(np.unique(mask[bottom][mask[bottom] != BACKGROUND_CLASS]).tolist()) == {WHEEL_CLASS}


def test_car_sizes_and_positions_vary() -> None:
    boxes = np.array([_car_box(mask) for _, mask in _scenes(40)], dtype=float)
    height, width = SCENE_HW
    widths = (boxes[:, 1] - boxes[:, 0] + 1) / width
    centres_x = (boxes[:, 0] + boxes[:, 1]) / 2 / width
    bottoms = boxes[:, 3] / height
    assert widths.min() < 0.5 and widths.max() > 0.85
    assert centres_x.std() > 0.08 and bottoms.std() > 0.04


def test_some_cars_are_cut_by_the_image_edge() -> None:
    boxes = [_car_box(mask) for _, mask in _scenes(40)]
    assert any(x_lo == 0 or x_hi == SCENE_HW[1] - 1 for x_lo, x_hi, _, _ in boxes)


def test_cars_face_both_ways() -> None:
    # The red rear light marks the back of the car: it is left of the car's centre when the car faces right.
    facing_right = set()
    for photo, mask in _scenes(12, (256, 256)):
        ys, xs = np.nonzero(mask == LIGHT_CLASS)
        centre = sum(_car_box(mask)[:2]) / 2
        red = (photo[ys, xs, 0] > 150) & (photo[ys, xs, 1] < 90)
        if red.any():  # the rear light can be outside the frame
            facing_right.add(bool(xs[red].mean() < centre))
    assert facing_right == {True, False}


@pytest.mark.parametrize(
    "kwargs",
    [{"layout": "pix2pix"}, {"n_pairs": 0}, {"seed": -1}, {"size_hw": (16, 256)}],
    ids=["unknown-layout", "no-pairs", "negative-seed", "tiny-size"],
)
def test_bad_arguments_raise_config_error_and_write_nothing(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        write_sample_archive(tmp_path / "sample.zip", **kwargs)
    assert list(tmp_path.iterdir()) == []
