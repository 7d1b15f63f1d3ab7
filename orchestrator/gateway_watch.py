"""Which gateways are alive, from their heartbeats: a node drops what a dead gateway relayed.

A gateway that dies (SIGKILL, a lost machine) cannot say that its IDE connections are
gone, so without this their sessions stay attached to a relay nobody reads: the text of
a running turn is sent to nowhere instead of being held for the resume, and the grace
period that frees an abandoned session never starts. Each gateway beats every quarter
of the TTL it announces; one silent for that TTL is dead to this node, which then
treats each of its connections as closed by its IDE.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError

from wire.broker import GATEWAY_HEARTBEATS


class GatewayWatch:
    """The gateways heard within their TTL; `on_gone(gateway)` for each that falls silent."""

    def __init__(self, nc: Client, default_ttl_s: float, on_gone: Callable[[str], None]) -> None:
        """`default_ttl_s` judges a gateway known only from a connection it relayed (its
        first heartbeat has not arrived yet)."""
        self._nc = nc
        self._default_ttl_s = default_ttl_s
        self._on_gone = on_gone
        self._seen: dict[str, tuple[float, float]] = {}
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Listen to gateway heartbeats and look for silent gateways every quarter TTL."""
        self._subscription = await self._nc.subscribe(GATEWAY_HEARTBEATS, cb=self._beat)
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        """Listen and look no more."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._subscription is not None:
            with contextlib.suppress(NatsError):
                await self._subscription.unsubscribe()

    def heard(self, gateway: str, ttl_s: float | None = None) -> None:
        """`gateway` is alive now (a heartbeat, or a connection it just relayed)."""
        known = self._seen.get(gateway)
        ttl = ttl_s or (known[1] if known else self._default_ttl_s)
        self._seen[gateway] = (asyncio.get_running_loop().time(), ttl)

    def silent(self) -> list[str]:
        """Gateways not heard within their TTL; each is reported once, then forgotten."""
        now = asyncio.get_running_loop().time()
        gone = [gateway for gateway, (at, ttl) in self._seen.items() if now - at > ttl]
        for gateway in gone:
            del self._seen[gateway]
        return gone

    def _period(self) -> float:
        """A quarter of the shortest TTL in play."""
        ttls = [ttl for _, ttl in self._seen.values()] or [self._default_ttl_s]
        return min(ttls) / 4

    async def _beat(self, message: Msg) -> None:
        try:
            ttl = float(json.loads(message.data)["ttl"])
        except (ValueError, KeyError, TypeError):
            return
        self.heard(message.subject.rsplit(".", 1)[-1], ttl)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._period())
            for gateway in self.silent():
                self._on_gone(gateway)
