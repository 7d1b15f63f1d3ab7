"""The orchestrator's end of the internal link on NATS: IDE connections relayed by gateways.

A gateway sends a connection's frames to one node's open subject until one of them
opens or resumes a session there (`OpenRequest`); the connection is then bound to
that node, its later frames come on the node's connection subject, and server
frames go back to the gateway's subject for it. A resume of a session this node
does not hold is redirected to the live owner, or, when the owner's lease is
gone, claimed: the session is rebuilt from its log as a restart rebuilds it from
the transcript (a streaming turn ends with `interrupted`, pending tool calls are
offered again) and numbers on with no gap.

Frames to a gateway wait until the session's log holds everything recorded before
them, so an IDE never sees an event that a rebuild could not give again.

A connection ends as its IDE's WebSocket would on a single machine (the session is
detached and lives on for its grace period) when its gateway says the IDE left, and
also when the gateway itself falls silent (`GatewayWatch`): then the node also sends
the connection a 1011 close, which a gateway that was only cut off passes on to the IDE.
A frame for a connection the node no longer knows is answered with that close too.
When the node's own NATS connection drops, client frames sent meanwhile are lost, so it
does the same for every connection it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Coroutine
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError

from orchestrator.census import SessionCensus
from orchestrator.endpoint import ClientEndpoint
from orchestrator.frame_queue import QueuedConnection
from orchestrator.gateway_watch import GatewayWatch
from orchestrator.membership import Membership
from orchestrator.session_log import ClaimContested, SessionLog
from orchestrator.sessions import SessionRegistry
from wire.broker import (
    ACK,
    CLOSE,
    HEADER_ROOM,
    NODE,
    RELAY_WINDOW,
    OpenReply,
    OpenRequest,
    chunk_header,
    chunks,
    connections_of,
    encode_close,
    gateway_of,
    open_subject,
)

log = logging.getLogger(__name__)

CLOSE_MOVED = 1011
CLOSE_GATEWAY_LOST = 1011


class BrokerConnection(QueuedConnection):
    """One IDE connection relayed over NATS, as a session `Attachment`: its frames are
    published once the session's log holds everything recorded before them, and while
    the gateway has acknowledged all but `RELAY_WINDOW` bytes (past that they wait in the
    queue, whose backlog makes the session hold and merge its text, as on a socket)."""

    def __init__(self, nc: Client, node: str, subject: str, session_log: SessionLog) -> None:
        self.session_id: str | None = None
        self._node = node
        self._nc = nc
        self._subject = subject
        self._log = session_log
        self._chunk = max(nc.max_payload - HEADER_ROOM, 4096)
        self._published = 0
        self._acked = 0
        self._window_open = asyncio.Event()
        super().__init__()

    def acked(self, relayed: int) -> None:
        """The gateway has relayed this many bytes of this connection to its IDE."""
        if relayed > self._acked:
            self._acked = min(relayed, self._published)
            self._window_open.set()

    async def write_frames(self, frames: list[str]) -> None:
        """One message (in chunks when large), once the log is durable; none when the
        session was lost meanwhile (the IDE resumes from its owner)."""
        session_id = self.session_id
        deliverable = session_id is None or await self._log.durable(
            session_id, self._log.appended(session_id)
        )
        if deliverable:
            await self._publish("\n".join(frames).encode())

    async def write_close(self, code: int, reason: str) -> None:
        """The close, as a header the gateway passes on to the IDE."""
        await publish_close(self._nc, self._node, self._subject, code, reason)

    async def _publish(self, data: bytes) -> None:
        """The message, chunk by chunk, each once the window has room."""
        pieces = chunks(data, self._chunk)
        with contextlib.suppress(NatsError):
            for index, piece in enumerate(pieces):
                while self._published - self._acked >= RELAY_WINDOW:
                    self._window_open.clear()
                    await self._window_open.wait()
                self._published += len(piece)
                await self._nc.publish(
                    self._subject,
                    piece,
                    headers={NODE: self._node, **chunk_header(index, len(pieces))},
                )


async def publish_close(nc: Client, node: str, subject: str, code: int, reason: str) -> None:
    """Tell a gateway's connection that this node closed it."""
    with contextlib.suppress(NatsError):
        await nc.publish(subject, b"", headers={NODE: node, CLOSE: encode_close(code, reason)})


class _Connection:
    """A bound connection: its endpoint, its writer and the gateway relaying it."""

    def __init__(
        self, endpoint: ClientEndpoint, link: BrokerConnection, gateway: str | None
    ) -> None:
        self.endpoint = endpoint
        self.link = link
        self.gateway = gateway


class BrokerLinkServer:
    """Takes IDE connections from gateways over NATS and routes their frames to sessions."""

    def __init__(
        self,
        nc: Client,
        registry: SessionRegistry,
        session_log: SessionLog,
        membership: Membership,
    ) -> None:
        self.registry = registry
        self._nc = nc
        self._log = session_log
        self._membership = membership
        self._node = membership.node
        self._connections: dict[str, _Connection] = {}
        self._claims: dict[str, asyncio.Lock] = {}
        self._subscriptions: list[Subscription] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._gateways = GatewayWatch(nc, membership.ttl_s, self._gateway_gone)
        self._census = SessionCensus(nc, self._node, registry.held_by, membership.live_nodes)
        session_log.on_lost = self._lost
        membership.on_rejoined = self._check_owned

    async def start(self) -> None:
        """Subscribe to this node's subjects."""
        self._subscriptions = [
            await self._nc.subscribe(open_subject(self._node), cb=self._on_open),
            await self._nc.subscribe(connections_of(self._node), cb=self._on_frame),
        ]
        await self._gateways.start()
        await self._census.start()

    async def shutdown(self, drain_timeout_s: float) -> None:
        """Stop taking connections, write what the logs hold, close every connection with
        1001 and drop the lease (so the sessions may move at once)."""
        await self._gateways.stop()
        await self._census.stop()
        for subscription in self._subscriptions:
            with contextlib.suppress(NatsError):
                await subscription.unsubscribe()
        await self._log.drain(drain_timeout_s)
        for connection in list(self._connections.values()):
            connection.link.close(1001, "orchestrator shutting down")
        for connection in list(self._connections.values()):
            await connection.link.wait_closed(5)
        await self._membership.leave()
        with contextlib.suppress(NatsError, TimeoutError):
            await self._nc.flush(5)

    # ---- opening -----------------------------------------------------------------------

    async def _on_open(self, message: Msg) -> None:
        self._spawn(self._open(message))

    async def _open(self, message: Msg) -> None:
        try:
            request = OpenRequest.decode(message.data)
        except (ValueError, TypeError):
            log.warning("malformed open request")
            return
        reply = await self._answer(request)
        with contextlib.suppress(NatsError):
            await message.respond(reply.encode())

    async def _answer(self, request: OpenRequest) -> OpenReply:
        """A node whose lease is in doubt takes nothing (the gateway asks again or elsewhere)."""
        if not self._membership.trusted():
            return OpenReply(retry=True)
        hello = _hello(request.frame)
        session_id = hello.get("session_id") if hello else None
        if isinstance(session_id, str):
            settled = await self._settle_owner(session_id)
            if settled is not None:
                return settled
        elif hello is not None:
            # a new session: the token's cap counts its sessions on every node
            return self._take(request, await self._census.held_elsewhere(request.principal))
        return self._take(request)

    async def _settle_owner(self, session_id: str) -> OpenReply | None:
        """For a resume of a session not held here: redirect, wait, or claim it. None: go on
        (the session is here now, or the endpoint answers `unknown_session`)."""
        if self.registry.get(session_id) is not None:
            return None
        lock = self._claims.setdefault(session_id, asyncio.Lock())
        async with lock:
            if self.registry.get(session_id) is not None:
                return None
            owner = await self._membership.owner_of(session_id)
            if owner is None:
                return None
            if owner != self._node and await self._membership.alive(owner):
                return OpenReply(redirect=owner)
            not_before = time.time() - self.registry.limits.grace_period_s
            try:
                logged = await self._log.claim(session_id, not_before)
            except ClaimContested:
                return OpenReply(retry=True)
            finally:
                self._claims.pop(session_id, None)
            if logged is not None:
                self.registry.restore(logged.session_id, logged.config, logged.owner, logged.inputs)
        return None

    def _take(self, request: OpenRequest, held_elsewhere: int = 0) -> OpenReply:
        """Feed the frame to a new endpoint (`held_elsewhere`: the token's sessions on other
        nodes); keep it when it opened or resumed a session."""
        link = BrokerConnection(self._nc, self._node, request.reply_to, self._log)
        endpoint = ClientEndpoint(self.registry, request.principal, link, held_elsewhere)
        endpoint.handle_frame(request.frame)
        if endpoint.session is None:
            self._detach_later(link)
            return OpenReply()
        link.session_id = endpoint.session.session_id
        gateway = gateway_of(request.reply_to)
        if gateway is not None:
            self._gateways.heard(gateway)
        self._connections[request.conn] = _Connection(endpoint, link, gateway)
        return OpenReply(bound=True)

    def _detach_later(self, link: BrokerConnection) -> None:
        """An unbound connection's writer publishes its replies, then stops."""
        link.notify_when_drained(lambda: self._spawn(link.finish()))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- bound connections -------------------------------------------------------------

    async def _on_frame(self, message: Msg) -> None:
        conn = message.subject.rsplit(".", 1)[-1]
        connection = self._connections.get(conn)
        headers = message.headers
        if headers and ACK in headers:
            if connection is not None:
                with contextlib.suppress(ValueError):
                    connection.link.acked(int(headers[ACK]))
            return
        closing = bool(headers and CLOSE in headers)
        if connection is None:
            if message.reply and not closing:
                reason = "this orchestrator no longer serves the connection; resume"
                await publish_close(self._nc, self._node, message.reply, CLOSE_GATEWAY_LOST, reason)
            return
        if closing:
            await self._drop(conn, connection)
            return
        connection.endpoint.handle_frame(message.data.decode())

    async def _drop(self, conn: str, connection: _Connection) -> None:
        """The IDE connection is gone: its session lives on detached, as after a WebSocket
        drop on a single machine."""
        if self._connections.get(conn) is connection:
            del self._connections[conn]
        connection.endpoint.close()
        await connection.link.finish()

    def _gateway_gone(self, gateway: str) -> None:
        """A gateway fell silent: drop every connection it relayed; each is also closed with
        1011, in case the gateway lives and only its heartbeats were lost."""
        relayed = [(c, conn) for c, conn in self._connections.items() if conn.gateway == gateway]
        if not relayed:
            return
        log.warning(
            "gateway stopped beating; its connections detached",
            extra={"gateway": gateway, "connections": len(relayed)},
        )
        for conn, connection in relayed:
            self._spawn(self._drop_silent(conn, connection))

    def broker_lost(self) -> None:
        """This node's NATS connection dropped, so client frames sent meanwhile (a tool
        result, a message) never reached it: every connection is dropped and closed with
        1011 (sent once the connection is back), and each IDE resumes and sends again what
        is still pending."""
        if self._connections:
            log.warning("broker connection lost", extra={"connections": len(self._connections)})
        for conn, connection in list(self._connections.items()):
            self._spawn(self._drop_silent(conn, connection, "client frames may be lost; resume"))

    async def _drop_silent(
        self,
        conn: str,
        connection: _Connection,
        reason: str = "the gateway was unreachable; resume",
    ) -> None:
        await self._drop(conn, connection)
        await connection.link.write_close(CLOSE_GATEWAY_LOST, reason)

    def _lost(self, session_id: str) -> None:
        """Another node took the session over: free it here, send its connection on."""
        for conn, connection in list(self._connections.items()):
            if connection.link.session_id == session_id:
                del self._connections[conn]
        self.registry.release(
            session_id, CLOSE_MOVED, "the session moved to another orchestrator; resume"
        )

    async def _check_owned(self) -> None:
        """After this node's lease ran out: give up each session now recorded as another's."""
        for session_id in self.registry.session_ids():
            owner = await self._membership.owner_of(session_id)
            if owner != self._node:
                self._log.forget(session_id)
                self._lost(session_id)


def _hello(frame: str) -> dict[str, Any] | None:
    """The fields of a `hello` frame, if it is one."""
    try:
        parsed = json.loads(frame)
    except (ValueError, RecursionError):
        return None
    if isinstance(parsed, dict) and parsed.get("type") == "hello":
        return parsed
    return None
