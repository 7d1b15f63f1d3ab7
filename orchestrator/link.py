"""One gateway connection on the orchestrator's internal WebSocket, as a session `Attachment`.

Frames are queued without blocking the caller (the per-token path) and written
in order by one writer task, all the frames queued since its last write in one
socket write (a turn's first frames, or the frames of many sessions' reads under
load, cost one send and one wake-up of the gateway, not one each); a requested
close is sent after what is queued.
A connection whose queue passes `MAX_BACKLOG` characters is a client that
stays behind: it is closed with 4008 (its session lives on and can be resumed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from orchestrator.websocket_batch import send_batch

log = logging.getLogger(__name__)

MAX_BACKLOG = 256 * 1024 * 1024
CLOSE_TOO_SLOW = 4008


class LinkConnection:
    """Queues frames for one gateway connection and writes them in order."""

    def __init__(self, websocket: ServerConnection) -> None:
        self._websocket = websocket
        self._queue: deque[str] = deque()
        self._queued_chars = 0
        self._wake = asyncio.Event()
        self._close: tuple[int, str] | None = None
        self._drained: list[Callable[[], None]] = []
        self._writer = asyncio.get_running_loop().create_task(self._write())

    @property
    def backlog(self) -> int:
        """Characters queued and not yet handed to the socket."""
        return self._queued_chars

    def send(self, text: str) -> None:
        """Queue one frame; a client this far behind is disconnected."""
        if self._close is not None:
            return
        queue = self._queue
        queue.append(text)
        self._queued_chars += len(text)
        if len(queue) == 1:
            self._wake.set()
        elif self._queued_chars > MAX_BACKLOG:
            log.warning("client too slow, disconnecting", extra={"backlog": self._queued_chars})
            queue.clear()
            self._queued_chars = 0
            self.close(CLOSE_TOO_SLOW, "client too slow; resume to continue")

    def notify_when_drained(self, callback: Callable[[], None]) -> None:
        """Call `callback` once every queued frame has been handed to the socket."""
        if self._queue:
            self._drained.append(callback)
        else:
            callback()

    def close(self, code: int, reason: str) -> None:
        """Close after the queued frames are written."""
        if self._close is None:
            self._close = (code, reason)
            self._wake.set()

    async def finish(self) -> None:
        """Stop the writer: the connection is gone."""
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer

    async def _write(self) -> None:
        websocket = self._websocket
        queue = self._queue
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while queue:
                    await self._write_queued(websocket)
                if self._drained:
                    callbacks, self._drained = self._drained, []
                    for callback in callbacks:
                        callback()
                if self._close is not None:
                    await websocket.close(*self._close)
                    return
        except ConnectionClosed:
            queue.clear()
            self._queued_chars = 0

    async def _write_queued(self, websocket: ServerConnection) -> None:
        """Every queued frame in one write; then wait while the socket's buffer is full."""
        queue = self._queue
        texts = list(queue)
        queue.clear()
        self._queued_chars -= sum(map(len, texts))
        await send_batch(websocket, texts)
