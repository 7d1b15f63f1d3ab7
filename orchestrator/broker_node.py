"""An orchestrator as one node of a cluster on NATS JetStream: connect, join, serve, leave."""

from __future__ import annotations

import contextlib
import logging
import secrets
from dataclasses import dataclass

import nats
from nats.aio.client import Client
from nats.errors import Error as NatsError

from orchestrator.broker_server import BrokerLinkServer
from orchestrator.membership import Membership
from orchestrator.session_log import SessionLog, ensure_log_stream
from orchestrator.sessions import SessionRegistry
from wire import AgentServiceError, ErrorCode

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """Where the broker is and how long a node's lease and a session's log last."""

    url: str
    lease_ttl_s: float = 3.0
    log_max_age_s: float = 86_400.0


class BrokerUnavailable(AgentServiceError):
    """The NATS server cannot be reached or has no JetStream."""

    code = ErrorCode.ORCHESTRATOR_UNAVAILABLE


class BrokerNode:
    """This process's NATS connection, lease, session log and link server."""

    def __init__(self, nc: Client, settings: BrokerSettings, node: str) -> None:
        self.node = node
        self._nc = nc
        js = nc.jetstream()
        self._js = js
        self._settings = settings
        self._registry: SessionRegistry | None = None
        self.membership = Membership(
            nc, js, node, settings.lease_ttl_s, settings.log_max_age_s, self._load
        )
        self.session_log = SessionLog(
            js, node, nc.max_payload, self.membership.announce, self.membership.trusted
        )
        self._server: BrokerLinkServer | None = None

    @classmethod
    async def connect(cls, settings: BrokerSettings) -> BrokerNode:
        """Connect and make sure the log stream exists; raises BrokerUnavailable."""
        node = f"o{secrets.token_hex(6)}"
        made: list[BrokerNode] = []

        async def disconnected() -> None:
            if made:
                made[0].broker_lost()

        try:
            nc = await nats.connect(
                settings.url,
                name=f"orchestrator {node}",
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                connect_timeout=5,
                disconnected_cb=disconnected,
            )
            await ensure_log_stream(nc.jetstream(), settings.log_max_age_s)
        except (NatsError, OSError, TimeoutError) as exc:
            raise BrokerUnavailable(f"the broker at {settings.url} is unusable: {exc}") from None
        made.append(cls(nc, settings, node))
        return made[0]

    def broker_lost(self) -> None:
        """The NATS connection dropped: client frames sent meanwhile are gone."""
        if self._server is not None:
            self._server.broker_lost()

    async def serve(self, registry: SessionRegistry) -> None:
        """Take connections for `registry`'s sessions and join the cluster."""
        self._registry = registry
        self._server = BrokerLinkServer(self._nc, registry, self.session_log, self.membership)
        await self._server.start()
        await self.membership.join()

    async def stop(self, drain_timeout_s: float) -> None:
        """Leave the cluster cleanly: what the logs hold is written, connections get 1001."""
        if self._server is not None:
            await self._server.shutdown(drain_timeout_s)
        with contextlib.suppress(NatsError, TimeoutError):
            await self._nc.drain()
        log.info("node left", extra={"node": self.node})

    def _load(self) -> int:
        return len(self._registry) if self._registry is not None else 0
