"""The orchestrator's batched writes hold only while websockets' connection looks as expected.

`orchestrator/websocket_batch.py` frames texts with a connection's sans-I/O
protocol and writes them with its transport in one write. These tests use the
installed websockets over a real loopback connection: an upgrade that renames or
changes one of those internals (`protocol`, `transport`, `drain`) fails here.
"""

from __future__ import annotations

import asyncio
import inspect
import socket

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from orchestrator.websocket_batch import send_batch


async def _serve_once(texts: list[str], after: asyncio.Event) -> tuple[list[str], int]:
    """Start a server that sends `texts` as one batch to the first client; what it received
    and how many socket writes the batch took."""
    writes = 0

    async def handler(websocket: ServerConnection) -> None:
        nonlocal writes
        transport = websocket.transport
        write = transport.write

        def counting(data: bytes | bytearray | memoryview) -> None:
            nonlocal writes
            writes += 1
            write(data)

        transport.write = counting  # type: ignore[method-assign]
        await send_batch(websocket, texts)
        transport.write = write  # type: ignore[method-assign]
        await after.wait()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as client:
            received = [str(await client.recv()) for _ in texts]
            after.set()
    return received, writes


def test_the_connection_can_still_be_drained_as_send_does() -> None:
    assert inspect.iscoroutinefunction(ServerConnection.drain)
    assert list(inspect.signature(ServerConnection.drain).parameters) == ["self"]


def test_a_batch_arrives_as_separate_frames_in_order_in_one_write() -> None:
    texts = [f'{{"type": "agent_delta", "text": "{n}"}}' for n in range(50)] + ["é" * 70_000]
    received, writes = asyncio.run(_serve_once(texts, asyncio.Event()))
    assert received == texts
    assert writes == 1


def test_a_batch_on_a_closed_connection_raises_connection_closed() -> None:
    async def scenario() -> None:
        closed = asyncio.Event()

        async def handler(websocket: ServerConnection) -> None:
            await websocket.wait_closed()
            with pytest.raises(ConnectionClosed):
                await send_batch(websocket, ["late"])
            closed.set()

        async with serve(handler, "127.0.0.1", 0, family=socket.AF_INET) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}"):
                pass
            await asyncio.wait_for(closed.wait(), 10)

    asyncio.run(scenario())
