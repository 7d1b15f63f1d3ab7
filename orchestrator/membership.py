"""This orchestrator's membership of a cluster: a lease in a JetStream KV bucket with a TTL.

The node's key in `agent_nodes` lives while the node renews it (by revision, every
quarter TTL); the bucket's TTL removes it when the node stops renewing. A node
whose key is gone is dead to the others: the sessions `agent_sessions` says it
owns may be claimed. A node takes over a session only from a dead owner, so a
live owner keeps its sessions; joining or leaving moves nothing else.

The node trusts its own lease only until three quarters of the TTL after it sent the last
renewal that was acknowledged (the server's copy lives at least a TTL from
then): past that, for instance after a long pause (SIGSTOP), its session logs
wait. When the node finds its key gone, it registers again and gives up each
session whose owner record no longer names it. The session logs fence every
write besides, so a node that missed all this can still not write after a
claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import (
    BucketNotFoundError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NoKeysError,
)
from nats.js.kv import KeyValue

from wire.broker import NODES_BUCKET, SESSIONS_BUCKET, heartbeat_subject

log = logging.getLogger(__name__)

TRUST = 0.75


async def _bucket(js: JetStreamContext, name: str, ttl_s: float | None) -> KeyValue:
    try:
        return await js.key_value(name)
    except BucketNotFoundError:
        return await js.create_key_value(
            KeyValueConfig(bucket=name, ttl=ttl_s, storage=StorageType.FILE, history=1)
        )


class Membership:
    """The node's lease, its heartbeat, and the owner records of sessions."""

    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        node: str,
        ttl_s: float,
        sessions_ttl_s: float,
        load: Callable[[], int],
    ) -> None:
        self.node = node
        self.ttl_s = ttl_s
        self._nc = nc
        self._js = js
        self._sessions_ttl_s = sessions_ttl_s
        self._load = load
        self._nodes: KeyValue | None = None
        self._owners: KeyValue | None = None
        self._revision = 0
        self._trusted_until = 0.0
        self._task: asyncio.Task[None] | None = None
        self.on_rejoined: Callable[[], Awaitable[None]] = _nothing

    async def join(self) -> None:
        """Register this node and start renewing its lease."""
        self._nodes = await _bucket(self._js, NODES_BUCKET, self.ttl_s)
        self._owners = await _bucket(self._js, SESSIONS_BUCKET, self._sessions_ttl_s)
        sent = time.monotonic()
        self._revision = await self._nodes.create(self.node, self._value())
        self._trusted_until = sent + TRUST * self.ttl_s
        await self._beat()
        self._task = asyncio.get_running_loop().create_task(self._renew())
        log.info("node joined", extra={"node": self.node, "lease_ttl_s": self.ttl_s})

    def trusted(self) -> bool:
        """Whether this node may still act as the owner of its sessions."""
        return time.monotonic() < self._trusted_until

    async def alive(self, node: str) -> bool:
        """Whether `node` holds its lease."""
        assert self._nodes is not None
        try:
            await self._nodes.get(node)
        except KeyNotFoundError:
            return False
        return True

    async def live_nodes(self) -> list[str]:
        """The nodes holding a lease now, this one included."""
        assert self._nodes is not None
        try:
            return list(await self._nodes.keys())
        except NoKeysError:
            return []

    async def owner_of(self, session_id: str) -> str | None:
        """The node recorded as the session's owner, if any."""
        assert self._owners is not None
        try:
            entry = await self._owners.get(session_id)
        except KeyNotFoundError:
            return None
        return entry.value.decode() if entry.value else None

    async def announce(self, session_id: str) -> None:
        """Record this node as the session's owner (after its log holds this node's write)."""
        assert self._owners is not None
        while True:
            try:
                await self._owners.put(session_id, self.node.encode())
                return
            except (NatsError, TimeoutError) as exc:
                log.warning("owner record not written, retrying", extra={"error": str(exc)})
                await asyncio.sleep(0.2)

    async def leave(self) -> None:
        """Stop renewing and drop the lease at once, so others need not wait for its TTL."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._nodes is not None:
            with contextlib.suppress(NatsError, TimeoutError):
                await self._nodes.delete(self.node)

    def _value(self) -> bytes:
        return json.dumps({"sessions": self._load()}).encode()

    async def _beat(self) -> None:
        await self._nc.publish(
            heartbeat_subject(self.node),
            json.dumps({"ttl": self.ttl_s, "sessions": self._load()}).encode(),
        )

    async def _renew(self) -> None:
        assert self._nodes is not None
        while True:
            await asyncio.sleep(self.ttl_s / 4)
            sent = time.monotonic()
            try:
                try:
                    self._revision = await self._nodes.update(
                        self.node, self._value(), last=self._revision
                    )
                except (KeyWrongLastSequenceError, KeyNotFoundError):
                    log.warning("lease lost; joining again", extra={"node": self.node})
                    self._revision = await self._nodes.put(self.node, self._value())
                    self._trusted_until = 0.0
                    await self.on_rejoined()
                self._trusted_until = sent + TRUST * self.ttl_s
                await self._beat()
            except (NatsError, TimeoutError) as exc:
                log.warning("lease not renewed", extra={"error": str(exc)})
            except Exception:
                log.exception("lease renewal failed")


async def _nothing() -> None:
    """No sessions to check."""
