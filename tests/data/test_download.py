"""fetch/verify_file against a real HTTP server on 127.0.0.1 and real local files."""

from __future__ import annotations

import hashlib
import random
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pix2pix.data.download import Expected, fetch, hash_file, verify_file
from pix2pix.errors import ChecksumError, ConfigError, DownloadError

PAYLOAD = random.Random(0).randbytes(300_000)
FAST = {"backoff_s": 0.0, "timeout_s": 5.0}  # no waiting between attempts in tests


def pinned(data: bytes) -> Expected:
    """Everything pinned for ``data``; the blob id computed independently of the code under test."""
    blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    return Expected(size=len(data), sha256=hashlib.sha256(data).hexdigest(), git_blob_sha1=blob)


@dataclass
class FileServer:
    """What the test server serves at ``url`` and what it saw; ``mode`` picks its behaviour.

    Modes: ``range`` (honours Range), ``ignore-range`` (always 200 with the whole file),
    ``drop-once`` / ``drop-always`` (send half the body and close), ``stall`` (never answer).
    """

    payload: bytes = PAYLOAD
    mode: str = "range"
    url: str = ""
    ranges: list[str | None] = field(default_factory=list)
    agents: list[str | None] = field(default_factory=list)
    dropped: bool = False
    release: threading.Event = field(default_factory=threading.Event)


class Handler(BaseHTTPRequestHandler):
    """Serves ``FileServer.payload`` at ``/file.zip`` the way ``FileServer.mode`` says."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        state: FileServer = self.server.state  # type: ignore[attr-defined]
        state.ranges.append(self.headers.get("Range"))
        state.agents.append(self.headers.get("User-Agent"))
        if self.path != "/file.zip":
            self.send_error(404)
            return
        if state.mode == "stall":
            state.release.wait(10)
            return
        start = self._start_of_range(state)
        if start is None:
            return
        body = state.payload[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if state.mode == "drop-always" or (state.mode == "drop-once" and not state.dropped):
            state.dropped = True
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self.wfile.write(body)

    def _start_of_range(self, state: FileServer) -> int | None:
        """Send the status line for the request; return where the body starts, None if already answered."""
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        size = len(state.payload)
        if not match or state.mode == "ignore-range":
            self.send_response(200)
            return 0
        start = int(match.group(1))
        if start >= size:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        return start

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (keeps test output clean)
        pass


@pytest.fixture
def server() -> Iterator[FileServer]:
    state = FileServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/file.zip"
    yield state
    state.release.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (the port was just free)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/file.zip"


def test_http_download_is_verified_and_renamed(server: FileServer, tmp_path: Path) -> None:
    dest = fetch(server.url, tmp_path / "raw" / "cars.zip", pinned(PAYLOAD), **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert [p.name for p in dest.parent.iterdir()] == ["cars.zip"]


def test_requests_carry_a_user_agent(server: FileServer, tmp_path: Path) -> None:
    fetch(server.url, tmp_path / "cars.zip", pinned(PAYLOAD), **FAST)
    assert server.agents[0] is not None and server.agents[0].startswith("pix2pix-pipeline/")


def test_verified_dest_is_returned_without_network(server: FileServer, tmp_path: Path) -> None:
    dest = fetch(server.url, tmp_path / "cars.zip", pinned(PAYLOAD), **FAST)
    assert fetch(server.url, dest, pinned(PAYLOAD), **FAST) == dest
    assert len(server.ranges) == 1


def test_stale_dest_is_downloaded_again(server: FileServer, tmp_path: Path) -> None:
    (tmp_path / "cars.zip").write_bytes(b"an older version")
    dest = fetch(server.url, tmp_path / "cars.zip", pinned(PAYLOAD), **FAST)
    assert dest.read_bytes() == PAYLOAD


def test_partial_download_resumes_with_range_request(server: FileServer, tmp_path: Path) -> None:
    (tmp_path / "cars.zip.part").write_bytes(PAYLOAD[:100_000])
    dest = fetch(server.url, tmp_path / "cars.zip", pinned(PAYLOAD), **FAST)
    assert server.ranges == ["bytes=100000-"]
    assert verify_file(dest, pinned(PAYLOAD)) == hashlib.sha256(PAYLOAD).hexdigest()


def test_server_ignoring_range_restarts_from_zero(server: FileServer, tmp_path: Path) -> None:
    server.mode = "ignore-range"
    (tmp_path / "cars.zip.part").write_bytes(b"x" * 100_000)  # appending to this would corrupt the file
    dest = fetch(server.url, tmp_path / "cars.zip", pinned(PAYLOAD), **FAST)
    assert server.ranges == ["bytes=100000-"]
    assert dest.read_bytes() == PAYLOAD


def test_dropped_connection_is_retried_and_resumed(server: FileServer, tmp_path: Path) -> None:
    server.mode = "drop-once"
    dest = fetch(server.url, tmp_path / "cars.zip", pinned(PAYLOAD), retries=1, **FAST)
    assert server.ranges == [None, f"bytes={len(PAYLOAD) // 2}-"]
    assert dest.read_bytes() == PAYLOAD


def test_exhausted_retries_keep_the_part_for_the_next_run(server: FileServer, tmp_path: Path) -> None:
    server.mode = "drop-always"
    with pytest.raises(DownloadError, match=r"2 attempts\).*is kept and the next run resumes it"):
        fetch(server.url, tmp_path / "cars.zip", pinned(PAYLOAD), retries=1, **FAST)
    assert (tmp_path / "cars.zip.part").stat().st_size > 0
    assert not (tmp_path / "cars.zip").exists()


def test_complete_part_of_unknown_size_is_verified_after_416(server: FileServer, tmp_path: Path) -> None:
    (tmp_path / "cars.zip.part").write_bytes(PAYLOAD)
    expected = Expected(sha256=hashlib.sha256(PAYLOAD).hexdigest())
    dest = fetch(server.url, tmp_path / "cars.zip", expected, **FAST)
    assert server.ranges == [f"bytes={len(PAYLOAD)}-"]
    assert dest.read_bytes() == PAYLOAD


def test_sha256_mismatch_deletes_the_download(server: FileServer, tmp_path: Path) -> None:
    wrong = Expected(size=len(PAYLOAD), sha256="0" * 64)
    with pytest.raises(ChecksumError, match=r"sha256: expected 0{64}, got [0-9a-f]{64}.*cars\.zip\.part was deleted"):
        fetch(server.url, tmp_path / "cars.zip", wrong, **FAST)
    assert list(tmp_path.iterdir()) == []


def test_git_blob_mismatch_deletes_the_download(server: FileServer, tmp_path: Path) -> None:
    wrong = Expected(git_blob_sha1="a" * 40)
    with pytest.raises(ChecksumError, match=r"git_blob_sha1: expected a{40}.*update the pinned value in params\.yaml"):
        fetch(server.url, tmp_path / "cars.zip", wrong, **FAST)
    assert list(tmp_path.iterdir()) == []


def test_response_longer_than_pinned_size_is_cut_off(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(ChecksumError, match="expected 1000 bytes, the source sent more"):
        fetch(server.url, tmp_path / "cars.zip", Expected(size=1000), **FAST)
    assert list(tmp_path.iterdir()) == []


def test_http_404_fails_at_once_with_a_hint(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404.*set data.cars.source to the local path"):
        fetch(server.url.replace("file.zip", "gone.zip"), tmp_path / "cars.zip", pinned(PAYLOAD), retries=3,
              manual_hint="download it by hand and set data.cars.source to the local path", **FAST)
    assert len(server.ranges) == 1


def test_unreachable_server_error_says_how_to_use_a_local_copy(closed_port_url: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"could not reach http://127\.0\.0\.1:\d+/file\.zip .*check your "
                                            r"connection, or download it by hand and set data\.cars\.source"):
        fetch(closed_port_url, tmp_path / "cars.zip", pinned(PAYLOAD), retries=1, manual_hint="download it by hand and set data.cars.source to the local path", **FAST)
    assert not (tmp_path / "cars.zip").exists()


def test_stalled_server_times_out(server: FileServer, tmp_path: Path) -> None:
    server.mode = "stall"
    with pytest.raises(DownloadError, match="timed out"):
        fetch(server.url, tmp_path / "cars.zip", pinned(PAYLOAD), retries=0, backoff_s=0.0, timeout_s=0.05)


def test_progress_reports_growing_byte_counts(server: FileServer, tmp_path: Path) -> None:
    calls: list[tuple[int, int | None]] = []
    fetch(server.url, tmp_path / "cars.zip", pinned(PAYLOAD), progress=lambda done, total: calls.append((done, total)),
          **FAST)
    assert calls[0] == (0, len(PAYLOAD)) and calls[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


@pytest.mark.parametrize("source", ["ftp://example.org/cars.zip", "s3://bucket/cars.zip", "https:///no-host"])
def test_unsupported_source_is_a_config_error(source: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"must be http\(s\)://, file:// or a local path"):
        fetch(source, tmp_path / "cars.zip", pinned(PAYLOAD))


def test_file_url_source_is_copied_and_verified(tmp_path: Path) -> None:
    source = tmp_path / "my copy.zip"
    source.write_bytes(PAYLOAD)
    dest = fetch(source.as_uri(), tmp_path / "raw" / "cars.zip", pinned(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD and source.read_bytes() == PAYLOAD


def test_local_path_source_is_used_literally(tmp_path: Path) -> None:
    source = tmp_path / "cars%20(1).zip"  # a plain path is not a URL: "%20" is part of the name
    source.write_bytes(PAYLOAD)
    dest = fetch(str(source), tmp_path / "raw" / "cars.zip", pinned(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD


def test_wrong_local_source_is_kept_and_nothing_is_written(tmp_path: Path) -> None:
    source = tmp_path / "other.zip"
    source.write_bytes(b"not the dataset")
    with pytest.raises(ChecksumError, match="other.zip is not the expected file"):
        fetch(str(source), tmp_path / "raw" / "cars.zip", pinned(PAYLOAD))
    assert source.read_bytes() == b"not the dataset"
    assert list((tmp_path / "raw").iterdir()) == []


def test_missing_local_source_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="missing.zip does not exist.*set data.cars.source"):
        fetch(str(tmp_path / "missing.zip"), tmp_path / "cars.zip", pinned(PAYLOAD), manual_hint="download it by hand and set data.cars.source to the local path")


def test_verify_file_mismatch_names_file_values_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "cars.zip"
    path.write_bytes(PAYLOAD)
    with pytest.raises(ChecksumError, match=rf"cars\.zip is not the expected file \(size: expected 5 bytes, got "
                                            rf"{len(PAYLOAD)}\): delete it .*params\.yaml"):
        verify_file(path, Expected(size=5))


def test_verify_file_with_nothing_pinned_returns_sha256(tmp_path: Path) -> None:
    path = tmp_path / "cars.zip"
    path.write_bytes(PAYLOAD)
    assert verify_file(path, Expected()) == hashlib.sha256(PAYLOAD).hexdigest()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git executable")
def test_git_blob_sha1_matches_git_hash_object(tmp_path: Path) -> None:
    path = tmp_path / "small.bin"
    path.write_bytes(b"pix2pix\n\0\xff" * 1000)
    git = subprocess.run(["git", "hash-object", "--", str(path)], capture_output=True, text=True, check=True)
    assert hash_file(path).git_blob_sha1 == git.stdout.strip()


@pytest.mark.parametrize("bad", [{"sha256": "abc"}, {"git_blob_sha1": "z" * 40}, {"size": -1}])
def test_malformed_pin_is_a_config_error(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="pinned"):
        Expected(**bad)  # type: ignore[arg-type]


def test_pinned_hash_is_normalised_to_lower_case() -> None:
    assert Expected(sha256="AB" * 32).sha256 == "ab" * 32
