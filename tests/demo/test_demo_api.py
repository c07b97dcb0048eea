"""The demo's HTTP API answers expected failures with a 4xx and one line, and listens on loopback only."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pix2pix.errors import ConfigError
from pix2pix.serving.demo import MAX_UPLOAD_BYTES
from pix2pix.serving.server import bind_socket, check_demo_host
from tests.demo.conftest import IMAGE_SIZE, LABEL_MODEL, demo_server
from tests.demo.page import png_pixels

pytestmark = pytest.mark.slow
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def label_demo(demo_project: Path) -> Iterator[str]:
    with demo_server(demo_project, LABEL_MODEL) as url:
        yield url


def post(url: str, body: bytes) -> tuple[int, bytes]:
    try:
        with _DIRECT.open(urllib.request.Request(url, data=body, method="POST"), timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def class_map(value: int) -> bytes:
    return np.full((IMAGE_SIZE, IMAGE_SIZE), value, dtype="<u2").tobytes()


def test_generate_from_class_ids_answers_a_png_and_its_latency(label_demo: str) -> None:
    with _DIRECT.open(urllib.request.Request(f"{label_demo}/api/generate?seed=3", data=class_map(1), method="POST")) as response:
        assert response.status == 200 and response.headers["Content-Type"] == "image/png"
        assert float(response.headers["X-Generate-Ms"]) > 0
        assert png_pixels(response.read()).shape == (IMAGE_SIZE, IMAGE_SIZE, 3)


@pytest.mark.parametrize(
    ("query", "body", "message"),
    [
        ("seed=1", b"\x00\x01\x02", "is 8192 bytes, got 3"),
        ("seed=one", class_map(1), "seed='one' is not a whole number"),
        ("seed=-1", class_map(1), "seed -1 is outside"),
        ("seed=1", class_map(9), "class id 9 is not a class of this model"),
    ],
)
def test_a_bad_generate_request_is_a_400_with_its_reason(label_demo: str, query: str, body: bytes, message: str) -> None:
    status, answer = post(f"{label_demo}/api/generate?{query}", body)
    assert status == 400
    assert message in json.loads(answer)["error"]


def test_an_oversized_upload_is_refused_with_413_before_its_body_is_read(label_demo: str) -> None:
    address = urllib.parse.urlsplit(label_demo)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    connection.putrequest("POST", "/api/upload?name=huge.png")
    connection.putheader("Content-Length", str(MAX_UPLOAD_BYTES + 1))
    connection.endheaders()  # and no body: the answer must not wait for it
    response = connection.getresponse()
    assert response.status == 413 and "huge.png" in json.loads(response.read())["error"]
    connection.close()


def test_a_missing_example_is_a_400(label_demo: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as answer:
        _DIRECT.open(f"{label_demo}/api/examples/999", timeout=30)
    assert answer.value.code == 400 and "example 999 does not exist" in json.loads(answer.value.read())["error"]


def test_a_request_naming_another_host_is_refused(label_demo: str) -> None:
    address = urllib.parse.urlsplit(label_demo)
    for host, status in ((f"rebound.example:{address.port}", 400), (f"localhost:{address.port}", 200)):
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        connection.request("GET", "/api/model", headers={"Host": host})
        assert connection.getresponse().status == status, host
        connection.close()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "example.org"])
def test_non_loopback_hosts_need_allow_remote(host: str) -> None:
    with pytest.raises(ConfigError, match="not a loopback address.*--allow-remote"):
        check_demo_host(host, allow_remote=False)
    check_demo_host(host, allow_remote=True)


def test_a_taken_port_is_an_error_naming_it() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(ConfigError, match=f"127.0.0.1:{port}.*--port"):
            bind_socket("127.0.0.1", port)
