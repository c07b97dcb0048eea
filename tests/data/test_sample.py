"""The embedded sample: generated street scenes in the seed and Kaggle archive layouts.

The Kaggle layout's masks follow the published format (datasets.md: RGBA PNGs with R = G = B = class id, A = 255);
the seed layout's pairs are photo | colour mask, 512×256, like the real seed archive.
"""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from pix2pix.data.palette import build_color_mask
from pix2pix.data.sample import ARCHIVE_ROOT, CLASSES_CSV, KAGGLE_PHOTO_SIZES_HW, scene_rng, write_sample_archive
from pix2pix.data.sample_scene import (
    BODY,
    BUILDING,
    GRASS,
    PAVEMENT,
    ROAD,
    SCENE_CLASSES,
    SCENE_PALETTE,
    SKY,
    VEGETATION,
    WINDOW,
    _building,
    render_street_scene,
)
from pix2pix.errors import ConfigError

SCENE_HW = (128, 160)
CAR_PARTS = (1, 2, 3, 4)


def _scenes(count: int, size_hw: tuple[int, int] = SCENE_HW) -> list[tuple[np.ndarray, np.ndarray]]:
    return [render_street_scene(scene_rng(7, i), size_hw) for i in range(count)]


def _read_png(archive: zipfile.ZipFile, name: str) -> Image.Image:
    image = Image.open(io.BytesIO(archive.read(name)))
    image.load()
    return image


def _flat_textures(level: int) -> dict[str, np.ndarray]:
    return {name: np.full((64, 64), level, dtype=np.uint8) for name in ("brick", "grass", "gravel")}


@pytest.fixture(scope="module")
def seed_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_archive(tmp_path_factory.mktemp("seed") / "sample.zip", n_pairs=4, seed=3)


@pytest.fixture(scope="module")
def kaggle_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    n_pairs = len(KAGGLE_PHOTO_SIZES_HW) + 1
    return write_sample_archive(tmp_path_factory.mktemp("kaggle") / "sample.zip", n_pairs=n_pairs, layout="kaggle")


@pytest.mark.parametrize("layout", ["seed", "kaggle"])
def test_same_arguments_give_byte_identical_zips_whatever_the_worker_count(tmp_path: Path, layout: str) -> None:
    # One process, then two spawned ones splitting the 5 scenes between them: the same bytes.
    calls: list[tuple[int, int | None]] = []
    first = write_sample_archive(tmp_path / "a.zip", n_pairs=5, seed=5, layout=layout)
    second = write_sample_archive(
        tmp_path / "b.zip", n_pairs=5, seed=5, layout=layout, workers=2, progress=lambda done, total: calls.append((done, total))
    )
    assert first.read_bytes() == second.read_bytes()
    assert calls == [(done, 5) for done in range(1, 6)]
    with zipfile.ZipFile(second) as archive:
        assert sum(name.endswith(".png") for name in archive.namelist()) == (5 if layout == "seed" else 10)


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_bad_worker_count_is_refused(tmp_path: Path, workers: object) -> None:
    with pytest.raises(ConfigError, match="workers >= 1"):
        write_sample_archive(tmp_path / "a.zip", n_pairs=2, workers=workers)  # type: ignore[arg-type]
    assert not (tmp_path / "a.zip").exists()


def test_other_seed_gives_a_different_zip(tmp_path: Path) -> None:
    first = write_sample_archive(tmp_path / "a.zip", n_pairs=3, seed=5)
    second = write_sample_archive(tmp_path / "b.zip", n_pairs=3, seed=6)
    assert first.read_bytes() != second.read_bytes()


def test_writing_leaves_only_the_archive(tmp_path: Path) -> None:
    out = write_sample_archive(tmp_path / "raw" / "sample.zip", n_pairs=2)
    assert out == tmp_path / "raw" / "sample.zip"
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["sample.zip"]


def test_seed_layout_has_the_seed_archive_members_and_the_classes_in_sorted_order(seed_zip: Path) -> None:
    with zipfile.ZipFile(seed_zip) as archive:
        names = archive.namelist()
    pairs = [f"{ARCHIVE_ROOT}/train/sample_{i:04d}.png" for i in range(4)]
    assert names == [f"{ARCHIVE_ROOT}/", f"{ARCHIVE_ROOT}/{CLASSES_CSV}", f"{ARCHIVE_ROOT}/train/", *pairs]


def test_classes_csv_lists_every_class_with_its_colour(seed_zip: Path) -> None:
    with zipfile.ZipFile(seed_zip) as archive:
        lines = archive.read(f"{ARCHIVE_ROOT}/{CLASSES_CSV}").decode("ascii").splitlines()
    assert lines[0] == "id,name,r,g,b"
    rows = [line.split(",") for line in lines[1:]]
    assert [(int(i), name) for i, name, *_ in rows] == list(enumerate(SCENE_CLASSES))
    assert [tuple(map(int, row[2:])) for row in rows] == list(SCENE_PALETTE)


def test_seed_layout_pairs_are_rgb_512_by_256(seed_zip: Path) -> None:
    with zipfile.ZipFile(seed_zip) as archive:
        images = [_read_png(archive, n) for n in archive.namelist() if n.endswith(".png")]
    assert {(image.mode, image.size) for image in images} == {("RGB", (512, 256))}


def test_seed_layout_pair_is_photo_left_and_colour_mask_right(seed_zip: Path) -> None:
    photo, mask = render_street_scene(scene_rng(3, 2), (256, 256))
    with zipfile.ZipFile(seed_zip) as archive:
        pair = np.asarray(_read_png(archive, f"{ARCHIVE_ROOT}/train/sample_0002.png"))
    np.testing.assert_array_equal(pair[:, :256], photo)
    np.testing.assert_array_equal(pair[:, 256:], build_color_mask(mask, SCENE_PALETTE))


def test_seed_layout_masks_give_every_pixel_a_palette_class(seed_zip: Path) -> None:
    with zipfile.ZipFile(seed_zip) as archive:
        halves = [np.asarray(_read_png(archive, n))[:, 256:] for n in archive.namelist() if n.endswith(".png")]
    colours = {tuple(c) for half in halves for c in np.unique(half.reshape(-1, 3), axis=0).tolist()}
    assert colours <= set(SCENE_PALETTE)


def test_kaggle_layout_has_images_masks_and_classes(kaggle_zip: Path) -> None:
    with zipfile.ZipFile(kaggle_zip) as archive:
        names = archive.namelist()
        classes = archive.read(f"{ARCHIVE_ROOT}/classes.txt").decode("ascii").splitlines()
    pair_names = [f"sample_{i:04d}.png" for i in range(len(KAGGLE_PHOTO_SIZES_HW) + 1)]
    assert names == [
        f"{ARCHIVE_ROOT}/", f"{ARCHIVE_ROOT}/{CLASSES_CSV}", f"{ARCHIVE_ROOT}/classes.txt", f"{ARCHIVE_ROOT}/images/",
        *(f"{ARCHIVE_ROOT}/images/{n}" for n in pair_names), f"{ARCHIVE_ROOT}/masks/",
        *(f"{ARCHIVE_ROOT}/masks/{n}" for n in pair_names),
    ]
    assert classes == list(SCENE_CLASSES)


def test_kaggle_photos_are_landscape_of_several_sizes_two_of_them_rgba(kaggle_zip: Path) -> None:
    with zipfile.ZipFile(kaggle_zip) as archive:
        photos = [_read_png(archive, n) for n in archive.namelist() if "/images/" in n and n.endswith(".png")]
    assert [p.mode for p in photos] == ["RGBA", "RGBA"] + ["RGB"] * (len(photos) - 2)
    assert {(p.height, p.width) for p in photos} == set(KAGGLE_PHOTO_SIZES_HW)
    assert all(p.width >= p.height for p in photos)


def test_kaggle_masks_are_published_rgba_grey_coded_ids_of_the_photo_size(kaggle_zip: Path) -> None:
    with zipfile.ZipFile(kaggle_zip) as archive:
        for name in (n for n in archive.namelist() if "/masks/" in n and n.endswith(".png")):
            mask = _read_png(archive, name)
            photo = _read_png(archive, name.replace("/masks/", "/images/"))
            assert (mask.mode, mask.size) == ("RGBA", photo.size)
            red, green, blue, alpha = np.moveaxis(np.asarray(mask), 2, 0)
            assert (red == green).all() and (green == blue).all() and (alpha == 255).all()
            assert int(red.max()) < len(SCENE_CLASSES)


def test_kaggle_pair_is_the_rendered_scene(kaggle_zip: Path) -> None:
    photo, mask = render_street_scene(scene_rng(0, 3), KAGGLE_PHOTO_SIZES_HW[3])
    with zipfile.ZipFile(kaggle_zip) as archive:
        np.testing.assert_array_equal(np.asarray(_read_png(archive, f"{ARCHIVE_ROOT}/images/sample_0003.png")), photo)
        stored = np.asarray(_read_png(archive, f"{ARCHIVE_ROOT}/masks/sample_0003.png"))
    np.testing.assert_array_equal(stored[..., 0], mask)


def test_render_returns_uint8_photo_and_mask_of_the_requested_size() -> None:
    photo, mask = render_street_scene(np.random.default_rng(0), (96, 200))
    assert (photo.shape, photo.dtype, mask.shape, mask.dtype) == ((96, 200, 3), np.uint8, (96, 200), np.uint8)


def test_every_class_appears_across_the_scenes() -> None:
    found = set().union(*(np.unique(mask).tolist() for _, mask in _scenes(12)))
    assert found == set(range(len(SCENE_CLASSES)))


def test_scene_is_sky_above_the_skyline_and_road_at_the_bottom() -> None:
    for _, mask in _scenes(10):
        assert (mask[0] == SKY).mean() > 0.3  # buildings and trees leave sky at the top
        assert set(np.unique(mask[-1]).tolist()) <= {ROAD, *CAR_PARTS}
        road_rows = np.nonzero((mask == ROAD).any(axis=1))[0]
        sky_rows = np.nonzero((mask == SKY).any(axis=1))[0]
        assert sky_rows.max() < road_rows.min()


def test_classes_look_like_what_they_are() -> None:
    # Mean colours over many scenes: sky blue, vegetation and grass green, road a dark grey.
    scenes = _scenes(12)
    mean = {
        label: np.concatenate([photo[mask == label] for photo, mask in scenes]).astype(float).mean(axis=0)
        for label in (SKY, ROAD, VEGETATION, GRASS)
    }
    assert mean[SKY][2] > mean[SKY][0] + 40
    assert mean[VEGETATION][1] > mean[VEGETATION][[0, 2]].max() and mean[GRASS][1] > mean[GRASS][[0, 2]].max()
    assert np.ptp(mean[ROAD]) < 25 and mean[ROAD].mean() < mean[SKY].mean() - 40


def test_the_mask_decides_which_texture_shows_at_every_pixel() -> None:
    # The same rng stream renders one scene with dark and with bright flat textures: car pixels (which no texture
    # paints) must not change, and every pixel of a textured class must be darker with the dark textures.
    dark_photo, mask = render_street_scene(np.random.default_rng(11), SCENE_HW, _flat_textures(40))
    bright_photo, bright_mask = render_street_scene(np.random.default_rng(11), SCENE_HW, _flat_textures(200))
    np.testing.assert_array_equal(mask, bright_mask)
    inside_car = ndimage.binary_erosion(np.isin(mask, CAR_PARTS), np.ones((3, 3)))
    textured = ndimage.binary_erosion(np.isin(mask, (ROAD, PAVEMENT, VEGETATION, GRASS)), np.ones((3, 3)))
    assert inside_car.any() and textured.any()
    np.testing.assert_array_equal(dark_photo[inside_car], bright_photo[inside_car])
    assert (dark_photo[textured].astype(int).sum(axis=1) < bright_photo[textured].astype(int).sum(axis=1)).all()


def test_each_building_window_grid_moves_with_its_corner() -> None:
    # Windows are dark glass on a bright flat wall; moving the building's corner moves its windows with it, so
    # where they are follows from the building's outline in the mask.
    wall = np.full((128, 128), BUILDING, dtype=np.uint8)
    flat = np.full((64, 64), 200, dtype=np.uint8)
    first = _building(np.random.default_rng(0), wall, [(20.0, 10.0)], flat, 1.0).sum(axis=2) < 300
    moved = _building(np.random.default_rng(0), wall, [(27.0, 23.0)], flat, 1.0).sum(axis=2) < 300
    assert 0.1 < first[20:, 10:].mean() < 0.5
    assert not first[:20].any() and not first[:, :10].any()  # none above or left of the corner
    np.testing.assert_array_equal(first[20:100, 10:100], moved[27:107, 23:113])


def test_windows_sit_inside_the_car_body() -> None:
    for _, mask in _scenes(10, (256, 256)):
        for column in np.nonzero((mask == WINDOW).any(axis=0))[0]:
            rows = np.nonzero(mask[:, column] == WINDOW)[0]
            body_rows = np.nonzero(mask[:, column] == BODY)[0]
            assert body_rows.min() < rows.min() and body_rows.max() > rows.max()


def test_cars_stand_on_the_road() -> None:
    for _, mask in _scenes(12):
        car_rows = np.nonzero(np.isin(mask, CAR_PARTS).any(axis=1))[0]
        road_rows = np.nonzero((mask == ROAD).any(axis=1))[0]
        assert car_rows.max() > road_rows.min()


def test_buildings_and_cars_vary_between_scenes() -> None:
    scenes = _scenes(20)
    building_share = [float((mask == BUILDING).mean()) for _, mask in scenes]
    car_share = [float(np.isin(mask, CAR_PARTS).mean()) for _, mask in scenes]
    assert np.std(building_share) > 0.02 and np.std(car_share) > 0.02


@pytest.mark.parametrize(
    "kwargs",
    [{"layout": "pix2pix"}, {"n_pairs": 0}, {"seed": -1}, {"size_hw": (16, 256)}],
    ids=["unknown-layout", "no-pairs", "negative-seed", "tiny-size"],
)
def test_bad_arguments_raise_config_error_and_write_nothing(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        write_sample_archive(tmp_path / "sample.zip", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_an_unguarded_calling_script_gets_a_clear_error_and_no_archive(tmp_path: Path) -> None:
    # Spawned workers import the calling script; without a __main__ guard each of them calls again and dies.
    script = tmp_path / "make_sample.py"
    script.write_text(
        "from pix2pix.data.sample import write_sample_archive\n"
        f"write_sample_archive({str(tmp_path / 'sample.zip')!r}, n_pairs=4, workers=2)\n"
    )
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0
    assert 'guard its top level with `if __name__ == "__main__":`' in result.stderr
    assert not (tmp_path / "sample.zip").exists()
