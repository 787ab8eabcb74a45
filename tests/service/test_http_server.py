"""``service.api.http``: the uvicorn protocol `mcuprof serve` uses turns Nagle's algorithm off
on every connection, also on a listening socket made without a protocol number (as uvicorn
makes it for several workers), where asyncio leaves it on."""

from __future__ import annotations

import asyncio
import socket

from uvicorn.config import Config
from uvicorn.server import ServerState

from service.api.http import NoDelayHttp


async def _app(scope: object, receive: object, send: object) -> None:  # never called here
    raise AssertionError("no request is sent")


def _nodelay_of_accepted(protocol_class: type[asyncio.Protocol]) -> int:
    async def go() -> int:
        loop = asyncio.get_running_loop()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # proto 0, as uvicorn's
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        config = Config(_app, lifespan="off", log_level="warning")
        made: list[asyncio.Protocol] = []

        def factory() -> asyncio.Protocol:
            protocol = protocol_class(config=config, server_state=ServerState(),  # type: ignore[call-arg]
                                      app_state={})
            made.append(protocol)
            return protocol

        server = await loop.create_server(factory, sock=listener)
        port = listener.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(100):
            if made and getattr(made[0], "transport", None) is not None:
                break
            await asyncio.sleep(0.01)
        sock = made[0].transport.get_extra_info("socket")  # type: ignore[attr-defined]
        value = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        writer.close()
        server.close()
        await server.wait_closed()
        return int(value)

    return asyncio.run(go())


def test_connections_have_nagle_off() -> None:
    assert _nodelay_of_accepted(NoDelayHttp) != 0


def test_the_plain_protocol_would_leave_it_on() -> None:
    # What the override is for: without it, a response's head and body wait for the
    # client's delayed ACK (about 40 ms per request on Linux).
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    assert _nodelay_of_accepted(HttpToolsProtocol) == 0
