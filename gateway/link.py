"""The gateway's side of the link to the orchestrator: one small interface, one implementation.

`OrchestratorLink.open(principal)` gives a `SessionChannel` that carries one IDE
connection's frames both ways. Today that is a WebSocket to the orchestrator's
`/v1/link`; moving the link onto a message broker is one new implementation
of these two classes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from wire import PRINCIPAL_HEADER, AgentServiceError, ErrorCode


class LinkError(AgentServiceError):
    """The orchestrator cannot be reached or refused the link."""

    code = ErrorCode.ORCHESTRATOR_UNAVAILABLE

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class SessionChannel(Protocol):
    """Frames of one IDE connection, to and from the orchestrator."""

    async def send(self, text: str) -> None:
        """Forward one client frame."""

    def frames(self) -> AsyncIterator[str]:
        """Server frames until the orchestrator closes the channel."""

    @property
    def close_code(self) -> int | None:
        """How the orchestrator closed the channel, once it has."""

    @property
    def close_reason(self) -> str:
        """Why, in the orchestrator's words."""

    async def close(self) -> None:
        """The IDE went away."""


class OrchestratorLink(Protocol):
    """Opens channels to the orchestrator that owns new sessions."""

    async def open(self, principal: str) -> SessionChannel:
        """A channel for one IDE connection acting for `principal`."""


class WebSocketChannel:
    """A `SessionChannel` over one WebSocket connection."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection

    async def send(self, text: str) -> None:
        """Forward one client frame."""
        await self._connection.send(text)

    async def frames(self) -> AsyncIterator[str]:
        """Server frames until the orchestrator closes the channel."""
        try:
            async for message in self._connection:
                yield message if isinstance(message, str) else message.decode()
        except ConnectionClosed:
            return

    @property
    def close_code(self) -> int | None:
        """How the orchestrator closed the channel, once it has."""
        return self._connection.close_code

    @property
    def close_reason(self) -> str:
        """Why, in the orchestrator's words."""
        return self._connection.close_reason or ""

    async def close(self) -> None:
        """The IDE went away."""
        await self._connection.close()


class WebSocketLink:
    """Opens a WebSocket to the orchestrator per IDE connection."""

    def __init__(self, url: str, internal_token: str | None) -> None:
        self.url = url
        self._internal_token = internal_token

    async def open(self, principal: str) -> SessionChannel:
        """Connect; raise LinkError when the orchestrator is down or refuses."""
        headers = {PRINCIPAL_HEADER: principal}
        if self._internal_token:
            headers["Authorization"] = f"Bearer {self._internal_token}"
        try:
            connection = await connect(
                self.url,
                additional_headers=headers,
                compression=None,
                max_size=None,
                open_timeout=10,
                ping_interval=20,
            )
        except InvalidStatus as exc:
            raise LinkError(
                f"the orchestrator refused the link ({exc.response.status_code})"
            ) from None
        except (OSError, TimeoutError) as exc:
            raise LinkError(
                f"the orchestrator is unreachable: {exc}", getattr(exc, "errno", None)
            ) from None
        return WebSocketChannel(connection)
