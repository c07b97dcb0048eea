"""Safe extraction: valid archives extract with literal names; every hostile one is refused with no output."""

from __future__ import annotations

import io
import stat
import tarfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from pix2pix.data.archive import RATIO_MIN_BYTES, extract_tar, extract_zip
from pix2pix.errors import ArchiveError, DataError

PNG_LIKE = bytes(range(256)) * 4  # incompressible enough: ratio about 1


def write_zip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """Write ``members`` (name → bytes; a name ending in "/" is a folder) into a zip at ``path``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about the duplicate names we build
        with zipfile.ZipFile(path, "w", compression) as archive:
            for name, data in members.items():
                archive.writestr(name, data)
    return path


def zip_with_entries(path: Path, entries: list[tuple[zipfile.ZipInfo, bytes]]) -> Path:
    """Write hand-made ``ZipInfo`` entries (duplicates, links) into a zip at ``path``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with zipfile.ZipFile(path, "w") as archive:
            for info, data in entries:
                archive.writestr(info, data)
    return path


def symlink_info(name: str) -> zipfile.ZipInfo:
    """A zip entry marked as a Unix symbolic link (what ``zip --symlinks`` stores)."""
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def build_zip_slip(path: Path) -> Path:
    return write_zip(path, {"ok.png": PNG_LIKE, "../x": b"escaped"})


def build_backslash_slip(path: Path) -> Path:
    return write_zip(path, {"data\\..\\..\\x": b"escaped"})


def build_absolute(path: Path) -> Path:
    return write_zip(path, {"/tmp/x": b"escaped"})


def build_drive_path(path: Path) -> Path:
    return write_zip(path, {"C:/Windows/x": b"escaped"})


def build_symlink(path: Path) -> Path:
    return zip_with_entries(path, [(zipfile.ZipInfo("ok.png"), PNG_LIKE), (symlink_info("link"), b"/etc/passwd")])


def build_truncated(path: Path) -> Path:
    write_zip(path, {"a.png": PNG_LIKE, "b.png": PNG_LIKE})
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def build_crc_corrupt(path: Path) -> Path:
    write_zip(path, {"a.png": PNG_LIKE}, compression=zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    data[data.index(PNG_LIKE[:64]) + 10] ^= 0xFF  # flip one stored byte: the CRC no longer matches
    path.write_bytes(bytes(data))
    return path


def build_not_a_zip(path: Path) -> Path:
    path.write_bytes(b"<html>Sign in to continue</html>")
    return path


def build_duplicate(path: Path) -> Path:
    return zip_with_entries(path, [(zipfile.ZipInfo("a.png"), PNG_LIKE), (zipfile.ZipInfo("a.png"), b"other")])


def build_case_duplicate(path: Path) -> Path:
    return write_zip(path, {"img/Car.png": PNG_LIKE, "img/car.png": PNG_LIKE})


def build_file_and_folder(path: Path) -> Path:
    return write_zip(path, {"a": PNG_LIKE, "a/b.png": PNG_LIKE})


def build_bomb(path: Path) -> Path:
    return write_zip(path, {"zeros.bin": bytes(4 * RATIO_MIN_BYTES)})


HOSTILE_ZIPS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "zip-slip": (build_zip_slip, r"'\.\./x' climbs out"),
    "backslash-slip": (build_backslash_slip, "climbs out"),
    "absolute-path": (build_absolute, "absolute path"),
    "drive-path": (build_drive_path, "absolute path"),
    "symlink": (build_symlink, "symbolic link"),
    "truncated": (build_truncated, "corrupt or truncated"),
    "crc-mismatch": (build_crc_corrupt, "corrupt or truncated"),
    "not-a-zip": (build_not_a_zip, "corrupt or truncated"),
    "duplicate-name": (build_duplicate, "same name"),
    "case-duplicate": (build_case_duplicate, "same name"),
    "file-and-folder": (build_file_and_folder, "both a file and a folder"),
    "decompression-bomb": (build_bomb, "decompression bomb"),
}


@pytest.mark.parametrize("case", list(HOSTILE_ZIPS))
def test_hostile_zip_is_refused_and_leaves_no_output(tmp_path: Path, case: str) -> None:
    build, message = HOSTILE_ZIPS[case]
    archive = build(tmp_path / "hostile.zip")
    (tmp_path / "out").mkdir()
    dest = tmp_path / "out" / "raw"
    with pytest.raises(ArchiveError, match=message) as error:
        extract_zip(archive, dest)
    assert str(archive) in str(error.value)
    assert not dest.exists()
    assert list((tmp_path / "out").iterdir()) == []  # no temporary folder left behind either
    assert not (tmp_path / "x").exists()


def test_refused_zip_leaves_existing_destination_untouched(tmp_path: Path) -> None:
    dest = tmp_path / "raw"
    extract_zip(write_zip(tmp_path / "good.zip", {"a.png": PNG_LIKE}), dest)
    with pytest.raises(ArchiveError):
        extract_zip(build_zip_slip(tmp_path / "bad.zip"), dest)
    assert sorted(p.name for p in dest.iterdir()) == ["a.png"]


def test_member_over_size_limit_is_refused(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "big.zip", {"a.png": PNG_LIKE})
    with pytest.raises(ArchiveError, match="over the limit"):
        extract_zip(archive, tmp_path / "out", max_member_bytes=len(PNG_LIKE) - 1)
    assert not (tmp_path / "out").exists()


def test_total_over_size_limit_is_refused(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "big.zip", {"a.png": PNG_LIKE, "b.png": PNG_LIKE})
    with pytest.raises(ArchiveError, match="total"):
        extract_zip(archive, tmp_path / "out", max_total_bytes=len(PNG_LIKE) + 1)
    assert not (tmp_path / "out").exists()


def test_too_many_members_are_refused(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "many.zip", {f"{i}.png": PNG_LIKE for i in range(3)})
    with pytest.raises(ArchiveError, match="more than 2 members"):
        extract_zip(archive, tmp_path / "out", max_members=2)


def test_missing_archive_is_named_in_error(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="missing.zip does not exist"):
        extract_zip(tmp_path / "missing.zip", tmp_path / "out")


def test_unwritable_destination_is_not_blamed_on_the_archive(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_bytes(b"a file where a folder should be")
    archive = write_zip(tmp_path / "good.zip", {"a.png": PNG_LIKE})
    with pytest.raises(DataError, match="could not write") as error:
        extract_zip(archive, tmp_path / "blocker" / "raw")
    assert not isinstance(error.value, ArchiveError)


def test_small_compressible_member_is_not_mistaken_for_a_bomb(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "json.zip", {"masks.json": b"{}" * 50_000})
    extract_zip(archive, tmp_path / "out")
    assert (tmp_path / "out" / "masks.json").stat().st_size == 100_000


def test_names_are_extracted_literally_without_url_decoding(tmp_path: Path) -> None:
    names = {
        "car-segmentation/": b"",
        "car-segmentation/images/": b"",
        "car-segmentation/images/003%20(2).png": PNG_LIKE,
        "car-segmentation/images/M%C3%BCller (1).png": b"second",
        "car-segmentation/images/-leading-dash.png": b"third",
        "car-segmentation/classes.txt": b"background\ncar\n",
    }
    dest = extract_zip(write_zip(tmp_path / "cars.zip", names), tmp_path / "raw")
    images = dest / "car-segmentation" / "images"
    assert sorted(p.name for p in images.iterdir()) == ["-leading-dash.png", "003%20(2).png", "M%C3%BCller (1).png"]
    assert (images / "003%20(2).png").read_bytes() == PNG_LIKE
    assert (dest / "car-segmentation" / "classes.txt").read_bytes() == b"background\ncar\n"


def test_backslashes_are_folder_separators(tmp_path: Path) -> None:
    dest = extract_zip(write_zip(tmp_path / "win.zip", {"train\\a.png": PNG_LIKE}), tmp_path / "raw")
    assert (dest / "train" / "a.png").read_bytes() == PNG_LIKE


def test_extraction_replaces_previous_destination_as_a_whole(tmp_path: Path) -> None:
    dest = tmp_path / "raw"
    extract_zip(write_zip(tmp_path / "old.zip", {"old.png": PNG_LIKE}), dest)
    extract_zip(write_zip(tmp_path / "new.zip", {"new.png": PNG_LIKE}), dest)
    assert sorted(p.name for p in dest.iterdir()) == ["new.png"]


def write_tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    """Write regular files given as ``(name, bytes)`` and hand-made ``TarInfo`` entries into ``path``."""
    with tarfile.open(path, "w:gz") as archive:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                archive.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                archive.addfile(info, io.BytesIO(member[1]))
    return path


def test_tar_extracts_regular_files_with_literal_names(tmp_path: Path) -> None:
    members = [("./dayton/-abc.x-1.y2.a-3.jpg", PNG_LIKE), ("./dayton/b%20c.jpg", b"x")]
    archive = write_tar(tmp_path / "d.tar.gz", members)
    dest = extract_tar(archive, tmp_path / "raw")
    assert sorted(p.name for p in (dest / "dayton").iterdir()) == ["-abc.x-1.y2.a-3.jpg", "b%20c.jpg"]


def test_tar_symlink_is_refused(tmp_path: Path) -> None:
    link = tarfile.TarInfo("link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    with pytest.raises(ArchiveError, match="is a link"):
        extract_tar(write_tar(tmp_path / "l.tar.gz", [("a.jpg", PNG_LIKE), link]), tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


def test_tar_parent_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="climbs out"):
        extract_tar(write_tar(tmp_path / "s.tar.gz", [("../x", b"escaped")]), tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


def test_truncated_tar_names_itself(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "t.tar.gz", [("a.jpg", bytes(range(256)) * 400)])
    archive.write_bytes(archive.read_bytes()[:-200])
    with pytest.raises(ArchiveError, match=r"t\.tar\.gz is corrupt or truncated"):
        extract_tar(archive, tmp_path / "raw")
    assert not (tmp_path / "raw").exists()
