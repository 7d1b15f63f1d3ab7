"""The one interface every source of answers implements: an upstream server, the demo model.

A backend turns one chat completion request (the caller's JSON body, already
checked) into an answer. It raises `ApiError`s only; which failures are worth a
retry or a fallback is decided by the failover loop, not here.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, Protocol


class Backend(Protocol):
    """Where a model's answers come from."""

    @property
    def label(self) -> str:
        """A name for logs: where the answers come from, never a key."""
        ...

    def stream(self, request: dict[str, Any]) -> AsyncGenerator[bytes, None]:
        """The answer as SSE frames (`data: ...\\n\\n`), each yielded as soon as it exists.

        The last frame is `data: [DONE]`, or a `data: {"error": ...}` frame relayed
        from the upstream. A failure raises an `ApiError`; once a frame has been
        yielded the stream has started and the caller reports failures in-stream.
        """
        ...

    async def complete(self, request: dict[str, Any]) -> dict[str, Any]:
        """The whole answer as one `chat.completion` body."""
        ...

    async def aclose(self) -> None:
        """Release connections; called once when the server stops."""
        ...
