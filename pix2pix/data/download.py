"""Fetch a pinned file from http(s)://, file:// or a local path: streamed, resumable, verified, atomic.

An HTTP download streams into ``<dest>.part``; an interrupted one resumes from that file with a
``Range`` request on the next attempt (or the next run). Whatever arrives is checked against the
pinned size and hashes before ``os.replace`` gives it its final name, so ``dest`` exists only when
it is the expected file. A ``dest`` that already verifies is returned without touching the network.

The git-blob SHA-1 (``sha1(b"blob <size>\\0" + bytes)``, what ``git hash-object`` prints) lets a
file hosted on GitHub be pinned before anyone has downloaded it: GitHub shows that id for free.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pix2pix import __version__
from pix2pix.atomic import atomic_path
from pix2pix.errors import ChecksumError, ConfigError, DownloadError

Progress = Callable[[int, int | None], None]
"""Called as ``progress(bytes_done, bytes_total_or_None)`` after every chunk."""

CHUNK_BYTES = 1 << 20
USER_AGENT = f"pix2pix-pipeline/{__version__} (python-urllib)"
# HTTP statuses worth another attempt: the server is busy or briefly broken, not the URL wrong.
RETRYABLE_HTTP_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})

_HEX_DIGITS = {"sha256": 64, "git_blob_sha1": 40}


@dataclass(frozen=True)
class Expected:
    """The pinned identity of a file; ``None`` leaves that property unchecked.

    Hashes are hex (upper case is accepted and stored lower case): ``sha256`` 64 digits,
    ``git_blob_sha1`` 40 digits. With nothing pinned any file passes, and :func:`verify_file`
    returns the SHA-256 to pin.
    """

    size: int | None = None
    sha256: str | None = None
    git_blob_sha1: str | None = None

    def __post_init__(self) -> None:
        if self.size is not None and (isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0):
            raise ConfigError(f"pinned size must be a whole number of bytes >= 0, got {self.size!r}")
        for field, digits in _HEX_DIGITS.items():
            value = getattr(self, field)
            if value is None:
                continue
            normalised = str(value).strip().lower()
            if not re.fullmatch(f"[0-9a-f]{{{digits}}}", normalised):
                raise ConfigError(f"pinned {field} must be {digits} hex digits, got {value!r}")
            object.__setattr__(self, field, normalised)


@dataclass(frozen=True)
class FileDigests:
    """What one pass over a file measured: its size in bytes and its hex digests."""

    size: int
    sha256: str
    git_blob_sha1: str


def hash_file(path: Path) -> FileDigests:
    """Read ``path`` once and return its size, SHA-256 and git-blob SHA-1 (as ``git hash-object``)."""
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    # The blob header needs the size up front; the count below catches a file that changes meanwhile.
    blob = hashlib.sha1(f"blob {size}\0".encode("ascii"), usedforsecurity=False)
    seen = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            sha256.update(chunk)
            blob.update(chunk)
            seen += len(chunk)
    if seen != size:
        raise DownloadError(f"{path} changed while it was being hashed ({size} then {seen} bytes): "
                            "wait for whatever writes it to finish and run again")
    return FileDigests(size=size, sha256=sha256.hexdigest(), git_blob_sha1=blob.hexdigest())


class _NotExpected(Exception):
    """What arrived differs from the pin; ``str()`` lists the differences ("what: expected X, got Y")."""


def _check(path: Path, expected: Expected) -> str:
    """Raise :class:`_NotExpected` unless ``path`` matches ``expected``; return its SHA-256."""
    size = path.stat().st_size
    if expected.size is not None and size != expected.size:
        # A wrong size settles it without reading the whole file.
        raise _NotExpected(f"size: expected {expected.size} bytes, got {size}")
    digests = hash_file(path)
    differences = [
        f"{field}: expected {want}, got {got}"
        for field, want, got in (
            ("sha256", expected.sha256, digests.sha256),
            ("git_blob_sha1", expected.git_blob_sha1, digests.git_blob_sha1),
        )
        if want is not None and want != got
    ]
    if differences:
        raise _NotExpected("; ".join(differences))
    return digests.sha256


DOWNLOADED_FILE_FIX = (
    "delete it and download it again, or, if the file at the source really changed, update the pinned value in params.yaml"
)


def verify_file(path: Path, expected: Expected, fix: str = DOWNLOADED_FILE_FIX) -> str:
    """Check ``path`` against ``expected`` and return its SHA-256 (64 lowercase hex digits).

    Raises :class:`ChecksumError` naming the file, each expected and actual value, and the ``fix``.
    """
    path = Path(path)
    if not path.is_file():
        raise DownloadError(f"{path} does not exist or is not a file: download it again")
    try:
        return _check(path, expected)
    except _NotExpected as error:
        raise ChecksumError(f"{path} is not the expected file ({error}): {fix}") from None


def _is_cached(dest: Path, expected: Expected) -> bool:
    """True when ``dest`` exists and matches ``expected`` (with nothing pinned, when it exists)."""
    if not dest.is_file():
        return False
    try:
        _check(dest, expected)
    except _NotExpected:
        return False
    return True


def fetch(
    source: str,
    dest: Path,
    expected: Expected,
    *,
    timeout_s: float = 30,
    retries: int = 3,
    progress: Progress | None = None,
    backoff_s: float = 1.0,
    manual_hint: str = "download it by hand and set the dataset's source in params.yaml to the local path",
) -> Path:
    """Make ``dest`` a verified copy of ``source`` and return ``dest``.

    ``source`` is an ``http(s)://`` URL, a ``file://`` URL or a local path. A ``dest`` that already
    matches ``expected`` is returned at once (with nothing pinned, any existing ``dest``). Up to
    ``retries`` failed HTTP attempts are retried, each resuming ``<dest>.part``, after waiting
    ``backoff_s * 2**n`` seconds for retry ``n``; ``timeout_s`` bounds each connect and each read.
    ``manual_hint`` tells a person how to supply the file by hand; error messages end with it.
    """
    dest = Path(dest)
    kind, location = _classify(source)
    if retries < 0:
        raise ConfigError(f"retries must be >= 0, got {retries}")
    if _is_cached(dest, expected):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f"{dest.name}.part")
    try:
        if kind == "http":
            _download_with_retries(location, part, expected, timeout_s, retries, backoff_s, progress, manual_hint)
        else:
            _copy_local(Path(location), part, expected, progress, manual_hint)
        _check(part, expected)
    except _NotExpected as error:
        part.unlink(missing_ok=True)
        raise ChecksumError(f"{source} is not the expected file ({error}); the downloaded copy {part} was deleted. "
                            f"Run again to download from scratch, or {manual_hint} (the right file); "
                            "if the file at the source really changed, update the pinned value in params.yaml"
                            ) from None
    os.replace(part, dest)
    return dest


def _classify(source: str) -> tuple[str, str]:
    """Return ``("http", url)`` or ``("local", path)``; raise :class:`ConfigError` for anything else."""
    parts = urllib.parse.urlsplit(source)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https") and parts.netloc:
        return "http", source
    if scheme == "file" and parts.netloc in ("", "localhost"):
        return "local", urllib.request.url2pathname(parts.path)
    # No scheme, or a one-letter "scheme" that is really a Windows drive (C:\data\cars.zip).
    if len(scheme) <= 1 and source.strip():
        return "local", source
    raise ConfigError(f"source {source!r} must be http(s)://, file:// or a local path")


def _copy_local(src: Path, part: Path, expected: Expected, progress: Progress | None, manual_hint: str) -> None:
    """Copy the local file ``src`` to ``part`` (replacing it); the user's file is never modified."""
    if not src.is_file():
        raise DownloadError(f"local source {src} does not exist or is not a file: {manual_hint}")
    # Written under a temporary name first so a killed copy never looks like a finished .part.
    with atomic_path(part) as tmp, src.open("rb") as reader, tmp.open("wb") as writer:
        _stream(reader, writer, done=0, total=src.stat().st_size, limit=expected.size, progress=progress)


class _Retry(Exception):
    """One HTTP attempt failed in a way another attempt may fix; ``str()`` is the reason."""


def _download_with_retries(url: str, part: Path, expected: Expected, timeout_s: float, retries: int,
                           backoff_s: float, progress: Progress | None, manual_hint: str) -> None:
    """Run up to ``retries + 1`` attempts of :func:`_http_attempt`; raise :class:`DownloadError` when all fail."""
    hint = f"check your connection, or {manual_hint}"
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff_s * 2 ** (attempt - 1))
        try:
            _http_attempt(url, part, expected, timeout_s, progress)
            return
        except _Retry as error:
            reason = str(error)
        except urllib.error.HTTPError as error:
            raise DownloadError(f"{url} answered HTTP {error.code} {error.reason}: the URL is wrong or the file "
                                f"moved; fix the URL, or {manual_hint}"
                                ) from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, socket.gaierror):  # no DNS: more attempts cannot help
                raise DownloadError(f"could not reach {url} ({error.reason}): {hint}") from None
            reason = str(error.reason)
        except (OSError, http.client.HTTPException) as error:  # timeouts, resets, broken responses
            reason = f"{type(error).__name__}: {error}"
    kept = f"; the partial file {part} is kept and the next run resumes it" if part.exists() else ""
    raise DownloadError(f"could not reach {url} ({reason}, {retries + 1} attempts){kept}: {hint}")


def _http_attempt(url: str, part: Path, expected: Expected, timeout_s: float, progress: Progress | None) -> None:
    """Make one request and append the body to ``part``, resuming from its current size.

    Returns when ``part`` holds the whole body as far as the server says; verification is the caller's.
    """
    offset = part.stat().st_size if part.exists() else 0
    if expected.size is not None:
        if offset == expected.size:
            return  # complete already: verification decides whether it is right
        if offset > expected.size:
            part.unlink()  # longer than the real file: not a prefix of it
            offset = 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s)
    except urllib.error.HTTPError as error:
        error.close()
        if error.code == 416 and offset:
            _handle_unsatisfiable_range(part, offset, expected)
            return
        if error.code in RETRYABLE_HTTP_STATUSES:
            raise _Retry(f"HTTP {error.code} {error.reason}") from None
        raise
    with response:
        start, total = _body_start_and_total(response)
        if start not in (0, offset):
            part.unlink(missing_ok=True)  # a piece we cannot place: start over from byte 0
            raise _Retry(f"the server sent bytes from {start} on when asked for {offset}")
        if start != offset:
            part.unlink(missing_ok=True)  # the server ignored the Range (200): start over from byte 0
        length = response.headers.get("Content-Length", "")
        with part.open("ab") as writer:
            done = _stream(response, writer, done=start, total=total, limit=expected.size, progress=progress)
    if length.isdigit() and done - start < int(length):
        # http.client returns b"" instead of raising when a body stops short of Content-Length.
        raise _Retry(f"connection closed after {done - start} of {length} bytes")


def _handle_unsatisfiable_range(part: Path, offset: int, expected: Expected) -> None:
    """React to HTTP 416 for ``Range: bytes=<size of part>-``.

    With an unknown size the .part is taken as complete and left to verification; with a known
    size (which the .part does not have, or no request would be made) it is bogus and deleted.
    """
    if expected.size is None:
        return
    part.unlink()
    raise _Retry(f"the server has nothing after byte {offset} of a {expected.size}-byte file, so {part} was not "
                 "a prefix of it; restarting from zero")


def _body_start_and_total(response: http.client.HTTPResponse) -> tuple[int, int | None]:
    """Return the byte position the body starts at and the full file size (None if unknown)."""
    if response.status == 206:
        content_range = response.headers.get("Content-Range", "")
        match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", content_range.strip())
        if not match:
            raise _Retry(f"the server sent a partial body with Content-Range {content_range!r}")
        return int(match.group(1)), None if match.group(2) == "*" else int(match.group(2))
    length = response.headers.get("Content-Length")
    return 0, int(length) if length is not None and length.isdigit() else None


def _stream(reader: BinaryIO, writer: BinaryIO, *, done: int, total: int | None, limit: int | None,
            progress: Progress | None) -> int:
    """Copy ``reader`` to ``writer`` in chunks; return the byte count reached (``done`` + bytes copied).

    Stops with :class:`_NotExpected` as soon as the count passes ``limit`` (the pinned size), so a
    wrong or endless source cannot fill the disk.
    """
    if progress:
        progress(done, total)
    while chunk := reader.read(CHUNK_BYTES):
        done += len(chunk)
        if limit is not None and done > limit:
            raise _NotExpected(f"size: expected {limit} bytes, the source sent more")
        writer.write(chunk)
        if progress:
            progress(done, total)
    writer.flush()
    os.fsync(writer.fileno())
    return done
