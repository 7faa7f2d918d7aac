"""Run the app with uvicorn on a socket we bind ourselves, so that ``--port 0`` works and the address
actually served is printed before the first request can arrive."""

from __future__ import annotations

import socket
import sys

from fsclap.errors import FsclapError
from fsclap.web.auth import check_bind


def bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise FsclapError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(
    app,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    log_level: str = "info",
) -> None:
    """Serve ``app`` until interrupted; refuses a non-loopback host without a token."""
    import uvicorn

    check_bind(host, token)
    sock = bind(host, port)
    print(f"serving fsclap style search on {url_of(sock)}/", flush=True)
    if token:
        print(
            "  token required: 'Authorization: Bearer <token>' or open the page once with ?token=<token>",
            file=sys.stderr,
            flush=True,
        )
    config = uvicorn.Config(
        app, log_level=log_level, access_log=log_level == "debug", timeout_graceful_shutdown=5
    )
    uvicorn.Server(config).run(sockets=[sock])
