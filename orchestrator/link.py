"""One gateway connection on the orchestrator's internal WebSocket, as a session `Attachment`.

The queue is `QueuedConnection`'s; each batch of frames goes out in one socket write
(`send_batch`). A connection whose queue passes `MAX_BACKLOG` characters is a
client that stays behind: it is closed with 4008 (its session lives on and can be
resumed).
"""

from __future__ import annotations

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from orchestrator.frame_queue import MAX_BACKLOG, QueuedConnection
from orchestrator.websocket_batch import send_batch


class LinkConnection(QueuedConnection):
    """Frames for one gateway connection, written on its WebSocket."""

    gone = (ConnectionClosed,)

    def __init__(self, websocket: ServerConnection) -> None:
        self._websocket = websocket
        super().__init__(MAX_BACKLOG)

    async def write_frames(self, frames: list[str]) -> None:
        """All of them in one socket write; then wait while the socket's buffer is full."""
        await send_batch(self._websocket, frames)

    async def write_close(self, code: int, reason: str) -> None:
        """The WebSocket close handshake."""
        await self._websocket.close(code, reason)
