"""Start, probe and stop the MLflow comparison UI over the project's tracking store, on loopback only.

The UI shows every run, parameter and artifact of the store and has no login, so it is only ever bound to a
loopback address; reaching it from another machine goes through an SSH tunnel
(``ssh -L 5000:127.0.0.1:5000 host``), never through ``--host 0.0.0.0``.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from pix2pix.errors import ConfigError, Pix2PixError

LOOPBACK_NAMES = ("localhost",)
# A proxy from the environment must not intercept requests to our own loopback server.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback IP (127.0.0.0/8, ::1, with or without brackets)."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_loopback_host(host: str) -> None:
    """Raise :class:`ConfigError` unless :func:`is_loopback_host`."""
    if not is_loopback_host(host):
        raise ConfigError(
            f"MLflow UI host {host!r} is not a loopback address: binding there would publish every run, parameter "
            "and artifact of the store without a login. Use 127.0.0.1 and reach it from another machine with an "
            "SSH tunnel (ssh -L 5000:127.0.0.1:5000 <this host>)."
        )


def ui_url(port: int, host: str = "127.0.0.1") -> str:
    """The address a browser opens, e.g. ``http://127.0.0.1:5000``."""
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}"


def ui_command(store_uri: str, host: str = "127.0.0.1", port: int = 5000) -> list[str]:
    """The argv of an MLflow server (UI + REST API) over ``store_uri``, run by the current interpreter.

    ``mlflow ui`` is an alias of ``mlflow server``; its default security middleware already accepts only
    localhost ``Host`` headers and origins, so no security flag is passed. One worker serves one local user
    and keeps the 2-core machines responsive (MLflow's default is 4).
    """
    check_loopback_host(host)
    if not 1 <= port <= 65535:
        raise ConfigError(f"MLflow UI port {port} is outside 1..65535: pick a free TCP port such as 5000.")
    return [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", store_uri,
        "--host", host,
        "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip


def ui_environment() -> dict[str, str]:
    """This process's environment with MLflow's telemetry and its GenAI job runner switched off (the runner is
    a pool of about eight processes that comparing training runs never uses, and doubles the start time)."""
    return {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def runs_page_url(url: str, experiment_id: str) -> str:
    """The experiment's runs table in the UI at ``url``. MLflow 3 opens an experiment on its GenAI overview
    unless the "machine_learning" workflow is asked for."""
    return f"{url}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def start_ui(store_uri: str, port: int, log_path: Path, host: str = "127.0.0.1") -> subprocess.Popen[bytes]:
    """Start the UI on ``127.0.0.1:port`` in its own process group (so :func:`stop_ui` also ends the uvicorn
    child it spawns); its stdout and stderr go to ``log_path``, which is created or truncated."""
    command = ui_command(store_uri, host=host, port=port)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=ui_environment(),
            start_new_session=True,
        )


def wait_until_serving(
    url: str, timeout_s: float, process: subprocess.Popen[bytes] | None = None, what: str = "the MLflow UI"
) -> None:
    """Poll ``<url>/health`` until it answers 200; raise :class:`Pix2PixError` after ``timeout_s`` seconds, or
    as soon as ``process`` (the server ``what``, when given) has exited — e.g. because the port was taken."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process is not None and process.poll() is not None:
            raise Pix2PixError(
                f"{what} exited with code {process.returncode} before serving {url}: read its log; "
                "a port already in use is the usual cause (choose another port)."
            )
        try:
            with _DIRECT.open(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass  # not listening yet
        if time.monotonic() >= deadline:
            raise Pix2PixError(f"{what} did not answer at {url}/health within {timeout_s:g} s: read its log.")
        time.sleep(0.25)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_ui(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """SIGTERM the server's process group, wait up to ``timeout_s`` for the server and its workers to exit,
    then SIGKILL whatever is left. Safe to call on a server that has already exited."""
    pgid = process.pid  # start_new_session made the server its group's leader
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        process.wait()
        return
    deadline = time.monotonic() + timeout_s
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        pass
    # The uvicorn worker may outlive the leader for a moment while it shuts down.
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _group_alive(pgid):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it; another program could still
    take it before the UI binds, which :func:`wait_until_serving` then reports)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
