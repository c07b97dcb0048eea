"""Safe extraction of zip and tar archives that come from the internet or from users.

Every member is checked before anything is written, and the archive is refused as a whole if one
member is unsafe: an absolute or drive path, a ``..`` component (backslashes count as separators, as
Windows tools treat them), a symlink, hard link or device, a duplicate name, more than
``max_members`` members, a member over ``max_member_bytes``, a total over ``max_total_bytes``, or an
expansion ratio over ``max_ratio`` (zip bombs; per zip member and for the whole archive, ignoring
amounts under ``RATIO_MIN_BYTES``). While writing, each member is held to its declared size, so a
lying header cannot get past the limits. Names count as duplicates when they differ only in
letter case or Unicode normalisation, because on macOS and Windows one would overwrite the other; a
name used both as a file and as a folder is refused too.

Extraction goes to a temporary sibling of ``dest_dir`` that is renamed onto it only when complete
(:func:`pix2pix.atomic.atomic_path`), so a failure leaves no partial output and an existing
``dest_dir`` untouched. Names are used exactly as stored: never URL-decoded (``%20`` stays
literal), globbed or passed through a shell. File modes, owners and times are not restored.
"""

from __future__ import annotations

import lzma
import re
import stat
import tarfile
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

from pix2pix.atomic import atomic_path
from pix2pix.errors import ArchiveError, DataError

GIB = 1 << 30
DEFAULT_MAX_MEMBER_BYTES = 2 * GIB
# Above the largest archive users bring (Cityscapes' leftImg8bit_trainvaltest.zip: about 11 GB); a parameter raises it.
DEFAULT_MAX_TOTAL_BYTES = 32 * GIB
DEFAULT_MAX_RATIO = 200
DEFAULT_MAX_MEMBERS = 500_000
# Below this many bytes a high ratio is harmless (a small JSON or text file compresses well).
RATIO_MIN_BYTES = 1 << 20
CHUNK_BYTES = 1 << 20
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
# What a damaged archive raises while being read (bz2 and gzip raise OSError subclasses).
_READ_ERRORS = (zipfile.BadZipFile, tarfile.TarError, zlib.error, lzma.LZMAError, EOFError, OSError)
_UNSAFE_FIX = "the archive is unsafe or damaged: get a clean copy from a trusted source"
_Entry = TypeVar("_Entry")


@dataclass(frozen=True)
class _Limits:
    max_member_bytes: int
    max_total_bytes: int
    max_ratio: float
    max_members: int


@dataclass(frozen=True)
class _Member:
    """One archive entry: its stored ``name``, safe path ``parts``, declared ``size`` and packed size if known."""

    name: str
    parts: tuple[str, ...]
    is_dir: bool
    size: int
    packed: int | None
    entry: zipfile.ZipInfo | tarfile.TarInfo


TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def extract_archive(archive: Path, dest_dir: Path, max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES) -> Path:
    """Extract a ``.zip`` or a tar archive (by its name) with the default limits but ``max_total_bytes`` of
    extracted members; see :func:`extract_zip`."""
    name = Path(archive).name.lower()
    if name.endswith(TAR_SUFFIXES):
        return extract_tar(Path(archive), dest_dir, max_total_bytes=max_total_bytes)
    return extract_zip(Path(archive), dest_dir, max_total_bytes=max_total_bytes)


def extract_zip(
    zip_path: Path,
    dest_dir: Path,
    *,
    max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_ratio: float = DEFAULT_MAX_RATIO,
    max_members: int = DEFAULT_MAX_MEMBERS,
) -> Path:
    """Extract the zip file ``zip_path`` into ``dest_dir`` (created or replaced as a whole); return ``dest_dir``.

    Raises :class:`ArchiveError` naming the archive, the member and the fix for every unsafe,
    oversized, truncated or corrupt input, leaving ``dest_dir`` as it was.
    """
    zip_path, limits = _existing(zip_path), _Limits(max_member_bytes, max_total_bytes, max_ratio, max_members)
    with _reading(zip_path):
        archive = zipfile.ZipFile(zip_path)  # reads the whole central directory
    with archive:
        members = [_zip_member(zip_path, info) for info in _bounded(archive.infolist(), zip_path, limits)]
        return _extract(zip_path, Path(dest_dir), members, lambda m: archive.open(m.entry), limits)


def extract_tar(
    tar_path: Path,
    dest_dir: Path,
    *,
    max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_ratio: float = DEFAULT_MAX_RATIO,
    max_members: int = DEFAULT_MAX_MEMBERS,
) -> Path:
    """Extract a ``.tar``, ``.tar.gz``, ``.tar.bz2`` or ``.tar.xz`` like :func:`extract_zip`.

    Only regular files and folders are allowed (stricter than tarfile's ``"data"`` filter, which
    allows links inside the destination). Tar stores no per-member packed size, so the ratio
    limit applies to the whole archive.
    """
    tar_path, limits = _existing(tar_path), _Limits(max_member_bytes, max_total_bytes, max_ratio, max_members)
    with _reading(tar_path):
        archive = tarfile.open(tar_path, "r:*")
    with archive:
        with _reading(tar_path):  # tar has no index: listing reads the whole archive
            members = [_tar_member(tar_path, info) for info in _bounded(archive, tar_path, limits)]
        return _extract(tar_path, Path(dest_dir), members, lambda m: archive.extractfile(m.entry), limits)


def _existing(archive: Path | str) -> Path:
    """Return ``archive`` as a Path, or raise :class:`ArchiveError` if it is not a file."""
    archive = Path(archive)
    if not archive.is_file():
        raise ArchiveError(f"archive {archive} does not exist or is not a file: download it again")
    return archive


@contextmanager
def _reading(archive: Path) -> Iterator[None]:
    """Turn a failure to read ``archive`` into an :class:`ArchiveError` that names it and the fix.

    Wraps reads only, so a failure to write (disk full) is never blamed on the archive.
    """
    try:
        yield
    except _READ_ERRORS as error:
        raise ArchiveError(f"archive {archive} is corrupt or truncated ({type(error).__name__}: {error}): "
                           "delete it and download it again") from None


@contextmanager
def _writing(target: Path) -> Iterator[None]:
    """Turn a failure to create or write ``target`` (disk full, name too long) into a :class:`DataError`."""
    try:
        yield
    except OSError as error:
        raise DataError(f"could not write {target} ({error}): check the free space and permissions there") from None


def _bounded(entries: Iterable[_Entry], archive: Path, limits: _Limits) -> Iterator[_Entry]:
    """Yield ``entries`` but stop with :class:`ArchiveError` past ``limits.max_members`` of them."""
    for count, entry in enumerate(entries, start=1):
        if count > limits.max_members:
            raise ArchiveError(f"refusing to extract {archive}: more than {limits.max_members} members; "
                               f"{_UNSAFE_FIX}, or raise max_members")
        yield entry


def member_parts(name: str, archive: Path) -> tuple[str, ...]:
    """Return the path components of the stored member ``name``, or raise :class:`ArchiveError` if unsafe.

    ``"a/./b\\\\c.png"`` → ``("a", "b", "c.png")``; ``""``, ``"."`` and ``"./"`` → ``()`` (the root).
    Absolute paths, drive letters and ``..`` components are refused.
    """
    posix = name.replace("\\", "/")
    if posix.startswith("/") or re.match(r"[A-Za-z]:", posix):
        raise ArchiveError(f"refusing to extract {archive}: member {name!r} has an absolute path; {_UNSAFE_FIX}")
    parts = tuple(part for part in posix.split("/") if part not in ("", "."))
    if ".." in parts:
        raise ArchiveError(f"refusing to extract {archive}: member {name!r} climbs out of the destination with "
                           f"'..'; {_UNSAFE_FIX}")
    return parts


def _zip_member(archive: Path, info: zipfile.ZipInfo) -> _Member:
    """Describe one zip entry, refusing links, special files, encryption and unreadable compression."""
    file_type = stat.S_IFMT(info.external_attr >> 16)
    if file_type == stat.S_IFLNK:
        raise ArchiveError(f"refusing to extract {archive}: member {info.filename!r} is a symbolic link; "
                           f"{_UNSAFE_FIX}")
    if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):  # 0: made on a system without Unix modes
        raise ArchiveError(f"refusing to extract {archive}: member {info.filename!r} is a special file "
                           f"(mode {oct(file_type)}); {_UNSAFE_FIX}")
    if info.flag_bits & 0x1:
        raise ArchiveError(f"cannot extract {archive}: member {info.filename!r} is encrypted; provide an "
                           "unencrypted archive")
    if info.compress_type not in _ZIP_METHODS:
        raise ArchiveError(f"cannot extract {archive}: member {info.filename!r} uses zip compression method "
                           f"{info.compress_type}, which Python cannot read; re-pack it with deflate")
    return _Member(info.filename, member_parts(info.filename, archive), info.is_dir() or file_type == stat.S_IFDIR,
                   info.file_size, info.compress_size, info)


def _tar_member(archive: Path, info: tarfile.TarInfo) -> _Member:
    """Describe one tar entry, refusing everything but regular files and folders."""
    if not (info.isreg() or info.isdir()):
        kind = "a link" if info.issym() or info.islnk() else "a special file"
        raise ArchiveError(f"refusing to extract {archive}: member {info.name!r} is {kind}; {_UNSAFE_FIX}")
    return _Member(info.name, member_parts(info.name, archive), info.isdir(), info.size, None, info)


def _check_members(archive: Path, members: list[_Member], limits: _Limits) -> None:
    """Refuse duplicates, file/folder clashes and sizes or ratios over ``limits``, before any write."""
    files: dict[str, str] = {}
    folders: set[str] = set()
    total = 0
    for member in members:
        keys = [_name_key(member.parts[:depth]) for depth in range(1, len(member.parts) + 1)]
        folders.update(keys[:-1] if not member.is_dir else keys)
        if member.is_dir:
            continue
        if not member.parts:
            raise ArchiveError(f"refusing to extract {archive}: a file member has the empty name {member.name!r}; "
                               f"{_UNSAFE_FIX}")
        if keys[-1] in files:
            raise ArchiveError(f"refusing to extract {archive}: members {files[keys[-1]]!r} and {member.name!r} "
                               "have the same name (letter case and Unicode normalisation ignored, since on macOS "
                               f"and Windows one would overwrite the other); {_UNSAFE_FIX}")
        files[keys[-1]] = member.name
        _check_size(archive, member, limits)
        total += member.size
    clash = next((files[key] for key in files if key in folders), None)
    if clash is not None:
        raise ArchiveError(f"refusing to extract {archive}: member {clash!r} is both a file and a folder; "
                           f"{_UNSAFE_FIX}")
    if total > limits.max_total_bytes:
        raise ArchiveError(f"refusing to extract {archive}: its members total {total} bytes, over the limit of "
                           f"{limits.max_total_bytes}; {_UNSAFE_FIX}, or, for a real data set that large, raise "
                           "`data.max_archive_bytes` in params.yaml (`--max-archive-bytes` of `pix2pix prepare`)")
    packed = archive.stat().st_size
    # Catches bombs whose members each look modest, e.g. many zip entries sharing one compressed body.
    if total >= RATIO_MIN_BYTES and total > limits.max_ratio * max(packed, 1):
        raise ArchiveError(f"refusing to extract {archive}: {packed} bytes would expand to {total} (more than "
                           f"{limits.max_ratio}x, a decompression bomb?); {_UNSAFE_FIX}, or raise max_ratio")


def _check_size(archive: Path, member: _Member, limits: _Limits) -> None:
    """Refuse a file member whose declared size or compression ratio is over ``limits``."""
    if member.size > limits.max_member_bytes:
        raise ArchiveError(f"refusing to extract {archive}: member {member.name!r} declares {member.size} bytes, "
                           f"over the limit of {limits.max_member_bytes}; {_UNSAFE_FIX}, or raise max_member_bytes")
    if (member.packed is not None and member.size >= RATIO_MIN_BYTES
            and member.size > limits.max_ratio * max(member.packed, 1)):
        raise ArchiveError(f"refusing to extract {archive}: member {member.name!r} expands {member.packed} bytes "
                           f"to {member.size} (more than {limits.max_ratio}x, a decompression bomb?); "
                           f"{_UNSAFE_FIX}, or raise max_ratio")


def _name_key(parts: tuple[str, ...]) -> str:
    """The form under which two names collide on a case-insensitive, normalising file system."""
    return unicodedata.normalize("NFC", "/".join(parts)).casefold()


def _extract(archive: Path, dest_dir: Path, members: list[_Member],
             open_member: Callable[[_Member], BinaryIO | None], limits: _Limits) -> Path:
    """Check ``members``, then write them under a temporary folder renamed onto ``dest_dir``."""
    _check_members(archive, members, limits)
    with _writing(dest_dir), atomic_path(dest_dir) as tmp:
        tmp.mkdir()
        for member in members:
            target = tmp.joinpath(*member.parts)
            with _writing(target):
                (target if member.is_dir else target.parent).mkdir(parents=True, exist_ok=True)
            if member.is_dir:
                continue
            with _reading(archive):
                source = open_member(member)
            assert source is not None  # only regular files reach here
            with source:
                _copy_member(archive, member, source, target)
    return dest_dir


def _copy_member(archive: Path, member: _Member, source: BinaryIO, target: Path) -> None:
    """Stream one member into the new file ``target``.

    The declared sizes passed the limits already; holding the actual bytes to the declared size
    (a zip or tar header can lie) therefore enforces the limits on what is really written.
    """
    written = 0
    with _writing(target):
        writer = target.open("xb")  # "x": never write through anything already there
    with writer:
        while True:
            with _reading(archive):
                chunk = source.read(CHUNK_BYTES)
            if not chunk:
                break
            written += len(chunk)
            if written > member.size:
                raise ArchiveError(f"refusing to extract {archive}: member {member.name!r} holds more than the "
                                   f"{member.size} bytes it declares; {_UNSAFE_FIX}")
            with _writing(target):
                writer.write(chunk)
    if written != member.size:
        raise ArchiveError(f"archive {archive} is corrupt or truncated: member {member.name!r} ends after "
                           f"{written} of {member.size} bytes; delete it and download it again")
