"""One session's side of the editor connection: updates sent in order, requests sent after them.

`notify` may be called from synchronous code on the event loop (the gateway client's event
hook); one pump task sends the updates in the order they were given. Every request to the
editor waits until the updates before it are out, so the editor never sees a permission
request for a tool call it has not been shown yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from acp.interfaces import Client
from acp.schema import (
    AgentMessageChunk,
    CurrentModeUpdate,
    ToolCallProgress,
    ToolCallStart,
    UsageUpdate,
    UserMessageChunk,
)

log = logging.getLogger(__name__)

SessionUpdate = (
    UserMessageChunk
    | AgentMessageChunk
    | ToolCallStart
    | ToolCallProgress
    | CurrentModeUpdate
    | UsageUpdate
)


class EditorLink:
    """Updates and requests of one ACP session; `session_id` is set once the service named it."""

    def __init__(self, client: Client, session_id: str = "") -> None:
        self.session_id = session_id
        self._client = client
        self._queue: asyncio.Queue[SessionUpdate] = asyncio.Queue()
        self._pump: asyncio.Task[None] | None = None

    def notify(self, update: SessionUpdate) -> None:
        """Queue a `session/update`; it goes out after every update queued before it."""
        if self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(self._send_updates())
        self._queue.put_nowait(update)

    async def flush(self) -> None:
        """Wait until every queued update has been sent."""
        await self._queue.join()

    async def editor(self) -> Client:
        """The editor connection, once the queued updates are out: use it for a request."""
        await self.flush()
        return self._client

    async def close(self) -> None:
        """Send what is queued, then stop the pump."""
        if self._pump is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), timeout=5.0)
        self._pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump
        self._pump = None

    async def _send_updates(self) -> None:
        while True:
            update = await self._queue.get()
            try:
                await self._client.session_update(self.session_id, update)
            except Exception as exc:
                log.warning(
                    "session update not delivered",
                    extra={"session_id": self.session_id, "error": str(exc)},
                )
            finally:
                self._queue.task_done()
