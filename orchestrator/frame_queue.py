"""Frames for one IDE connection, queued without blocking the per-token path and written
in order by one writer task.

Each way of reaching a gateway (the internal WebSocket, the NATS link) says only how
a batch of frames and a close are written; the queue, the backlog limit, the drain
callbacks and the close after what is queued are the same for all of them. All the
frames queued since the writer's last write are handed over as one batch (a turn's
first frames, or many frames under load, cost one write, not one each). A connection
whose queue passes its backlog limit is a client that stays behind: it is closed with
4008 (its session lives on and can be resumed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

CLOSE_TOO_SLOW = 4008
MAX_BACKLOG = 256 * 1024 * 1024
"""Characters a connection may have queued before it counts as staying behind."""
BATCH_CHARS = 64 * 1024
"""Most characters handed over in one write (more when one frame is larger): a long
backlog is written in pieces, so no write copies all of it at once."""


class QueuedConnection(ABC):
    """A session `Attachment` whose frames one writer task writes, in order, in batches."""

    gone: tuple[type[BaseException], ...] = ()
    """Exceptions of a write that mean the connection is gone: the writer stops quietly."""

    def __init__(self, max_backlog: int = MAX_BACKLOG) -> None:
        self._max_backlog = max_backlog
        self._queue: deque[str] = deque()
        self._queued_chars = 0
        self._wake = asyncio.Event()
        self._close: tuple[int, str] | None = None
        self._drained: list[Callable[[], None]] = []
        self._writer = asyncio.get_running_loop().create_task(self._write())

    @abstractmethod
    async def write_frames(self, frames: list[str]) -> None:
        """Write these frames, in order."""

    @abstractmethod
    async def write_close(self, code: int, reason: str) -> None:
        """Close the connection with this code and reason."""

    @property
    def backlog(self) -> int:
        """Characters queued and not yet written."""
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
        elif self._queued_chars > self._max_backlog:
            log.warning("client too slow, disconnecting", extra={"backlog": self._queued_chars})
            queue.clear()
            self._queued_chars = 0
            self.close(CLOSE_TOO_SLOW, "client too slow; resume to continue")

    def notify_when_drained(self, callback: Callable[[], None]) -> None:
        """Call `callback` once every queued frame has been written."""
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

    async def wait_closed(self, timeout_s: float) -> None:
        """Wait (up to `timeout_s`) until the requested close was written."""
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._writer), timeout_s)

    def _take_batch(self) -> list[str]:
        queue = self._queue
        first = queue.popleft()
        frames, size = [first], len(first)
        while queue and size + len(queue[0]) <= BATCH_CHARS:
            text = queue.popleft()
            frames.append(text)
            size += len(text)
        self._queued_chars -= size
        return frames

    async def _write(self) -> None:
        queue = self._queue
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while queue:
                    await self.write_frames(self._take_batch())
                if self._drained:
                    callbacks, self._drained = self._drained, []
                    for callback in callbacks:
                        callback()
                if self._close is not None:
                    await self.write_close(*self._close)
                    return
        except self.gone:
            queue.clear()
            self._queued_chars = 0
