"""The four paths the bench compares: how each opens a session, and which processes serve it.

- `direct`: the bench upstream read straight off its socket, the floor;
- `proxy`: the same client through the llm-proxy of the three-process stack;
- `pipeline`: an IDE on the gateway of `agent-service up`, three processes;
- `in-process`: the same on `agent-service up --in-process`;
- `broker` (with `bench --broker`): the same on `agent-service cluster`, one gateway and one
  orchestrator linked over NATS JetStream.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from benchmarks.processes import ProductStack
from benchmarks.sse_client import SseSession
from benchmarks.turn import BenchSession
from benchmarks.ws_client import ProtocolSession

DIRECT, PROXY, PIPELINE, IN_PROCESS = "direct", "proxy", "pipeline", "in-process"
BROKER = "broker"


class Route(Protocol):
    """One path under test."""

    name: str

    async def open_session(self) -> BenchSession:
        """A new client session on this path."""

    def services(self) -> dict[str, int]:
        """The product processes on this path: service name -> pid."""

    async def restart(self) -> bool:
        """Start fresh what serves this path, dropping its sessions; False if it cannot."""


class OpenAiRoute:
    """An OpenAI-compatible endpoint, read with the lean SSE client."""

    def __init__(self, name: str, base_url: str, stack: ProductStack | None = None) -> None:
        self.name = name
        self._base_url = base_url
        self._stack = stack

    async def open_session(self) -> BenchSession:
        """A keep-alive connection to the endpoint."""
        return await SseSession.open(self._base_url, self._stack.proxy_key if self._stack else None)

    def services(self) -> dict[str, int]:
        """The stack's llm-proxy, when the endpoint is one."""
        if self._stack is None:
            return {}
        return {"llm-proxy": self._stack.services["llm-proxy"]}

    async def restart(self) -> bool:
        """Endpoints hold no sessions: nothing to start fresh."""
        return False


class GatewayRoute:
    """A product stack, reached as an IDE reaches it: protocol v1 on the gateway's WebSocket."""

    def __init__(self, name: str, stack: ProductStack) -> None:
        self.name = name
        self._stack = stack

    async def open_session(self) -> BenchSession:
        """A new IDE connection with a new session."""
        return await ProtocolSession.open(self._stack.gateway_url, self._stack.token)

    def services(self) -> dict[str, int]:
        """Every service process of the stack."""
        return dict(self._stack.services)

    async def restart(self) -> bool:
        """Restart the stack on the same ports."""
        await asyncio.to_thread(self._stack.restart)
        return True
