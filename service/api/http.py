"""How ``mcuprof serve`` runs the app under uvicorn: several worker processes, httptools and
uvloop, and ``TCP_NODELAY`` on every connection.

uvicorn's own listening socket for several workers is made without a protocol number, so
asyncio does not set ``TCP_NODELAY`` on the connections it accepts (it does so only for
``IPPROTO_TCP`` sockets); a response written in two parts (head, body) then waits for the
client's delayed ACK, about 40 ms on Linux, on every request. ``NoDelayHttp`` sets the option
itself when a connection is made.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

APP_FACTORY = "service.api.app:create_app"


class NoDelayHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol with Nagle's algorithm off on its connection."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


def run(app: ASGIApp | None, *, host: str, port: int, workers: int,
        log_level: str = "info") -> None:
    """Serve ``app``, or with several ``workers`` ``create_app()`` built in each worker
    process (settings from the environment), sharing one listening socket; returns when
    the server stops. uvloop is used where it is installed (``loop="auto"``)."""
    target: ASGIApp | str = APP_FACTORY if app is None or workers > 1 else app
    uvicorn.run(target, factory=isinstance(target, str), host=host, port=port,
                workers=workers if isinstance(target, str) else None, http=NoDelayHttp,
                loop="auto", log_level=log_level)
