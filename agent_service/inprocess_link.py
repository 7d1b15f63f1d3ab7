"""The link to an orchestrator that runs in the gateway's own process: no socket, same frames.

Client frames go straight to the orchestrator's `ClientEndpoint`; server frames
come back through an in-memory queue. Used by `agent-service up --in-process`
and measured against the networked link by the benchmark.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable

from gateway import SessionChannel
from orchestrator import ClientEndpoint, SessionRegistry

CLOSE_NORMAL = 1000


class _MemoryAttachment:
    """The orchestrator's side: a session `Attachment` that queues frames in memory."""

    def __init__(self) -> None:
        self.frames: deque[str] = deque()
        self.queued_chars = 0
        self.wake = asyncio.Event()
        self.drained: list[Callable[[], None]] = []
        self.close_code: int | None = None
        self.close_reason = ""

    def send(self, text: str) -> None:
        if self.close_code is None:
            self.frames.append(text)
            self.queued_chars += len(text)
            self.wake.set()

    def close(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            self.wake.set()

    @property
    def backlog(self) -> int:
        return self.queued_chars

    def notify_when_drained(self, callback: Callable[[], None]) -> None:
        if self.frames:
            self.drained.append(callback)
        else:
            callback()


class InProcessChannel:
    """The gateway's side of one IDE connection's in-memory link."""

    def __init__(self, registry: SessionRegistry, principal: str) -> None:
        self._attachment = _MemoryAttachment()
        self._endpoint = ClientEndpoint(registry, principal, self._attachment)

    async def send(self, text: str) -> None:
        """Hand a client frame to the orchestrator."""
        self._endpoint.handle_frame(text)

    async def frames(self) -> AsyncIterator[str]:
        """Server frames until the orchestrator closes the connection."""
        side = self._attachment
        frames = side.frames
        while True:
            while frames:
                text = frames.popleft()
                side.queued_chars -= len(text)
                yield text
            if side.drained:
                callbacks, side.drained = side.drained, []
                for callback in callbacks:
                    callback()
                continue
            if side.close_code is not None:
                return
            side.wake.clear()
            await side.wake.wait()

    @property
    def close_code(self) -> int | None:
        """How the orchestrator closed the connection, once it has."""
        return self._attachment.close_code

    @property
    def close_reason(self) -> str:
        """Why, in the orchestrator's words."""
        return self._attachment.close_reason

    async def close(self) -> None:
        """The IDE went away."""
        self._endpoint.close()
        self._attachment.close(CLOSE_NORMAL, "client gone")


class InProcessLink:
    """Opens in-memory channels to an orchestrator registry in this process."""

    def __init__(self, registry: SessionRegistry) -> None:
        self.registry = registry

    async def open(self, principal: str) -> SessionChannel:
        """A channel for one IDE connection acting for `principal`."""
        return InProcessChannel(self.registry, principal)
