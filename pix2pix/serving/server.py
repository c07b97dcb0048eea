"""Where the demo listens: loopback by default (the MLflow UI's policy), and uvicorn on a socket bound first.

The page runs the model and shows test pairs to whoever reaches it, with no login, so a non-loopback host is
refused unless the person says they mean it (``--allow-remote``), and on loopback only requests naming a loopback
``Host`` are answered (a web page cannot reach the demo through DNS rebinding). Binding the socket before uvicorn starts turns
a taken port into one clear error instead of a log line from inside the server.
"""

from __future__ import annotations

import socket

import uvicorn
from starlette.applications import Starlette

from pix2pix.errors import ConfigError
from pix2pix.tracking.ui import is_loopback_host


def check_demo_host(host: str, allow_remote: bool) -> None:
    """Raise :class:`ConfigError` for a non-loopback ``host`` unless ``allow_remote``."""
    if allow_remote or is_loopback_host(host):
        return
    raise ConfigError(
        f"demo host {host!r} is not a loopback address: anyone who reaches it could run the model and see the "
        "test pairs, without a login. Use 127.0.0.1 and an SSH tunnel (ssh -L 7860:127.0.0.1:7860 <this host>), "
        "or add --allow-remote if you mean to publish it."
    )


def allowed_hosts(host: str, allow_remote: bool) -> list[str]:
    """The ``Host`` header names the app answers: any with ``allow_remote``, else the loopback names and ``host``."""
    if allow_remote:
        return ["*"]
    bracketed = f"[{host.strip('[]')}]" if ":" in host else host  # Host headers bracket IPv6 addresses
    return sorted({bracketed, "localhost", "127.0.0.1", "[::1]"})


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; ConfigError naming the address when it cannot be bound."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"demo port {port} is outside 0..65535: pick a free TCP port such as 7860")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as error:
        raise ConfigError(f"demo host {host!r} cannot be resolved ({error})") from error
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen()
    except OSError as error:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({error.strerror}): is the port in use? choose another with --port") from error
    return sock


def serve(app: Starlette, sock: socket.socket) -> None:
    """Serve ``app`` on the bound ``sock`` until Ctrl-C (uvicorn logs warnings and errors only)."""
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[sock])
