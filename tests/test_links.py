"""Both ends of the gateway-orchestrator link over a real loopback WebSocket.

The orchestrator's `LinkConnection` queues frames without blocking and writes
them in order, closes after what is queued, and drops a client that falls too
far behind with 4008. The gateway's `WebSocketLink` names the principal and the
internal token in its handshake and turns a refusal or an absent orchestrator
into a `LinkError`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from gateway.link import LinkError, WebSocketLink
from orchestrator import link
from orchestrator.link import LinkConnection
from tests.support.procs import free_port
from wire import PRINCIPAL_HEADER

Handler = Callable[[ServerConnection], Awaitable[None]]


@contextlib.asynccontextmanager
async def _served(
    handler: Handler, process_request: Callable[[ServerConnection, Request], Response] | None = None
) -> AsyncIterator[str]:
    async with serve(handler, "127.0.0.1", 0, process_request=process_request) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/v1/link"


async def _receive_all(url: str) -> tuple[list[str], int | None, str | None]:
    async with connect(url) as client:
        frames: list[str] = []
        try:
            async for message in client:
                assert isinstance(message, str)
                frames.append(message)
        except ConnectionClosed:
            pass
        return frames, client.close_code, client.close_reason


async def test_link_connection_writes_queued_frames_in_order_then_closes() -> None:
    drained: list[int] = []

    async def handler(websocket: ServerConnection) -> None:
        connection = LinkConnection(websocket)
        for number in range(100):
            connection.send(f"frame {number}")
        assert connection.backlog == sum(len(f"frame {n}") for n in range(100))
        connection.notify_when_drained(lambda: drained.append(connection.backlog))
        connection.close(1000, "bye")
        connection.send("after close")
        await websocket.wait_closed()
        await connection.finish()

    async with _served(handler) as url:
        frames, code, reason = await _receive_all(url)
    assert frames == [f"frame {number}" for number in range(100)]
    assert (code, reason) == (1000, "bye")
    assert drained == [0]


async def test_link_connection_drops_a_client_too_far_behind_with_4008(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(link, "MAX_BACKLOG", 1000)

    async def handler(websocket: ServerConnection) -> None:
        connection = LinkConnection(websocket)
        for _ in range(20):
            connection.send("x" * 100)
        assert connection.backlog == 0
        await websocket.wait_closed()
        await connection.finish()

    async with _served(handler) as url:
        frames, code, reason = await _receive_all(url)
    assert frames == []
    assert (code, reason) == (4008, "client too slow; resume to continue")


async def test_gateway_link_names_the_principal_and_the_internal_token() -> None:
    seen: list[Headers] = []

    async def handler(websocket: ServerConnection) -> None:
        seen.append(websocket.request.headers if websocket.request else Headers())
        await websocket.send("welcome")
        message = await websocket.recv()
        await websocket.send(f"echo {message!s}")
        await websocket.close(4000, "done here")

    async with _served(handler) as url:
        channel = await WebSocketLink(url, "internal-secret").open("digest-of-token")
        await channel.send("hello")
        frames = [frame async for frame in channel.frames()]
        await channel.close()
    assert frames == ["welcome", "echo hello"]
    assert (channel.close_code, channel.close_reason) == (4000, "done here")
    assert seen[0][PRINCIPAL_HEADER] == "digest-of-token"
    assert seen[0]["Authorization"] == "Bearer internal-secret"


async def test_gateway_link_raises_link_error_when_the_orchestrator_refuses() -> None:
    def refuse(connection: ServerConnection, request: Request) -> Response:
        return connection.respond(403, "no\n")

    async def handler(websocket: ServerConnection) -> None:
        await asyncio.sleep(0)

    async with _served(handler, refuse) as url:
        with pytest.raises(LinkError, match=r"refused the link \(403\)"):
            await WebSocketLink(url, None).open("p")


async def test_gateway_link_raises_link_error_when_nothing_listens() -> None:
    with pytest.raises(LinkError, match="unreachable") as raised:
        await WebSocketLink(f"ws://127.0.0.1:{free_port()}/v1/link", None).open("p")
    assert raised.value.code == "orchestrator_unavailable"
    assert raised.value.errno is not None
