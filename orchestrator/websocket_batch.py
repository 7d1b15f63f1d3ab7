"""The one place the orchestrator reaches past websockets' public API: frames written in batches.

`ServerConnection.send` writes one frame per call, each its own socket write.
Under load the link has many frames queued for one gateway connection, and one
write for all of them saves a syscall and a wake-up of the gateway per frame.
websockets has no public call for that, so this module frames the texts with
the connection's sans-I/O `protocol` and writes them with its `transport`, then
waits on `drain()` as `send` does. `tests/test_websocket_batch_adapter.py`
checks each of these against the installed websockets and fails when an
upgrade changes one.
"""

from __future__ import annotations

from collections.abc import Iterable

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State


async def send_batch(websocket: ServerConnection, texts: Iterable[str]) -> None:
    """Send each text as one text frame, in order, in one socket write.

    A connection that is not open raises ConnectionClosed, as `send` does.
    """
    protocol = websocket.protocol
    if protocol.state is not State.OPEN:
        for text in texts:
            await websocket.send(text)
        return
    for text in texts:
        protocol.send_text(text.encode())
    websocket.transport.write(b"".join(protocol.data_to_send()))
    await websocket.drain()
