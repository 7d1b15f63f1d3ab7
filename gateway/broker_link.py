"""The gateway's side of the link on NATS: IDE connections to whichever orchestrator holds them.

The second implementation of `OrchestratorLink` (beside the WebSocket one).
Orchestrators announce themselves by heartbeats; a connection's frames go to one
live orchestrator in turn until one of them opens or resumes a session (new
sessions spread round-robin; a resume is redirected to the session's owner, or
claimed by the orchestrator asked when the owner's lease is gone). From then on
the connection is bound to that orchestrator. When it stops beating for a lease
TTL, the connection is closed with 1011 and the IDE resumes through any gateway.

The gateway beats too, every quarter of the orchestrators' lease TTL: an orchestrator
that stops hearing it for that TTL detaches the connections it relayed, as if their IDEs
had closed them. Every client frame names the connection's inbox as its reply subject,
so a node that no longer knows the connection can close it.

Server frames travel on core NATS, which drops what a slow subscriber cannot take (the
server cuts a connection whose pending bytes pass its `max_pending`; the client drops
messages past a subscription's pending limit). A relay that may have lost a frame must not
go on as if whole: when the gateway's NATS connection drops, every IDE connection is
closed with 1011, and when one subscription drops messages, that IDE connection is; the
IDE resumes by `last_seq` and gets every event again from the session.

The gateway reads only the first frames of a connection (to route a `hello`);
everything else is relayed without parsing, as on the WebSocket link.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
from collections.abc import AsyncIterator

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError, SlowConsumerError
from nats.js.errors import BucketNotFoundError, NoKeysError

from gateway.link import LinkError, SessionChannel
from wire.broker import (
    ACK,
    ACK_EVERY,
    CHUNK,
    CLOSE,
    HEARTBEATS,
    NODE,
    NODES_BUCKET,
    OpenReply,
    OpenRequest,
    Reassembly,
    connection_subject,
    decode_close,
    encode_close,
    gateway_heartbeat_subject,
    gateway_subject,
    open_subject,
)

log = logging.getLogger(__name__)

CLOSE_UNAVAILABLE = 1011
CLOSE_FRAMES_LOST = 1011
REQUEST_TIMEOUT_S = 2.0
RETRY_S = 0.2


class NodeDirectory:
    """The orchestrators that beat within their lease TTL, and the channels bound to each."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[float, float]] = {}
        self._bound: dict[str, set[BrokerChannel]] = {}
        self._turn = itertools.count()
        self._changed = asyncio.Event()
        self.ttl_s = 3.0
        self._listening_since: float | None = None

    def listening(self) -> None:
        """Heartbeats are subscribed from now on."""
        self._listening_since = asyncio.get_running_loop().time()

    async def heard_all(self) -> None:
        """Wait until every live node had time to beat once (half a TTL after subscribing),
        so that the first sessions spread over all of them."""
        assert self._listening_since is not None
        wait = self._listening_since + self.ttl_s / 2 - asyncio.get_running_loop().time()
        if wait > 0:
            await asyncio.sleep(wait)

    def beat(self, message: Msg) -> None:
        """One heartbeat: `agent.hb.<node>` with the node's lease TTL."""
        node = message.subject.rsplit(".", 1)[-1]
        try:
            ttl = float(json.loads(message.data)["ttl"])
        except (ValueError, KeyError, TypeError):
            return
        self.ttl_s = ttl
        self._seen[node] = (asyncio.get_running_loop().time(), ttl)
        self._changed.set()

    def live(self) -> list[str]:
        """Nodes heard from within their TTL, in a stable order."""
        now = asyncio.get_running_loop().time()
        return sorted(node for node, (at, ttl) in self._seen.items() if now - at <= ttl)

    def pick(self, avoid: set[str]) -> str | None:
        """The next live node round-robin, skipping `avoid` while others are there."""
        nodes = [node for node in self.live() if node not in avoid] or self.live()
        return nodes[next(self._turn) % len(nodes)] if nodes else None

    async def wait_for_change(self, timeout_s: float) -> None:
        """Until the next heartbeat of a node not seen before, or `timeout_s`."""
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout_s)

    def bind(self, node: str, channel: BrokerChannel) -> None:
        self._bound.setdefault(node, set()).add(channel)

    def unbind(self, node: str, channel: BrokerChannel) -> None:
        self._bound.get(node, set()).discard(channel)

    def close_silent(self) -> None:
        """Close the channels of nodes that stopped beating: their IDEs resume elsewhere."""
        live = set(self.live())
        for node, channels in list(self._bound.items()):
            if node not in live and channels:
                log.warning("orchestrator stopped beating", extra={"node": node})
                for channel in list(channels):
                    channel.end(CLOSE_UNAVAILABLE, "orchestrator unavailable; resume")
                channels.clear()


class BrokerLink:
    """Opens channels to orchestrators through one NATS connection."""

    def __init__(self, url: str, route_timeout_s: float = 30.0) -> None:
        self.url = url
        self.route_timeout_s = route_timeout_s
        self.gateway = f"g{secrets.token_hex(6)}"
        self.directory = NodeDirectory()
        self._nc: Client | None = None
        self._connecting = asyncio.Lock()
        self._conns = itertools.count(1)
        self._channels: dict[str, BrokerChannel] = {}
        self._watch: asyncio.Task[None] | None = None

    async def connection(self) -> Client:
        """The NATS connection, made on first use; raises LinkError when NATS is down."""
        async with self._connecting:
            if self._nc is None:
                try:
                    nc = await nats.connect(
                        self.url,
                        name=f"gateway {self.gateway}",
                        max_reconnect_attempts=-1,
                        reconnect_time_wait=0.5,
                        connect_timeout=5,
                        allow_reconnect=True,
                        disconnected_cb=self._disconnected,
                        error_cb=self._error,
                    )
                except (NatsError, OSError, TimeoutError) as exc:
                    raise LinkError(f"the broker is unreachable: {exc}") from None
                await nc.subscribe(HEARTBEATS, cb=self._beat)
                self.directory.listening()
                self._nc = nc
                await self._announce()
                self._watch = asyncio.get_running_loop().create_task(self._watch_nodes())
            return self._nc

    async def open(self, principal: str) -> SessionChannel:
        """A channel for one IDE connection; it is routed on its first frames."""
        nc = await self.connection()
        channel = BrokerChannel(self, nc, principal, f"{self.gateway}c{next(self._conns)}")
        await channel.listen()
        self._channels[channel.inbox] = channel
        return channel

    def forget(self, channel: BrokerChannel) -> None:
        """The channel's relay ended."""
        self._channels.pop(channel.inbox, None)

    async def members(self) -> list[str]:
        """The orchestrators holding a lease in the membership bucket now; raises LinkError
        when the broker cannot say."""
        nc = await self.connection()
        try:
            nodes = await nc.jetstream().key_value(NODES_BUCKET)
            return sorted(await nodes.keys())
        except (BucketNotFoundError, NoKeysError):
            return []
        except (NatsError, TimeoutError) as exc:
            raise LinkError(f"the broker cannot list the orchestrators: {exc}") from None

    async def close(self) -> None:
        """Drop the NATS connection."""
        if self._watch is not None:
            self._watch.cancel()
        if self._nc is not None:
            with contextlib.suppress(NatsError):
                await self._nc.close()

    async def _beat(self, message: Msg) -> None:
        self.directory.beat(message)

    async def _disconnected(self) -> None:
        """Frames sent while the connection was down are gone: every IDE resumes."""
        if self._channels:
            log.warning("broker connection lost", extra={"connections": len(self._channels)})
        for channel in list(self._channels.values()):
            channel.end(CLOSE_FRAMES_LOST, "broker connection lost; resume")

    async def _error(self, error: Exception) -> None:
        """A subscription that dropped messages ends its IDE connection (it resumes)."""
        if isinstance(error, SlowConsumerError):
            channel = self._channels.get(error.subject)
            if channel is not None:
                log.warning("server frames dropped", extra={"subject": error.subject})
                channel.end(CLOSE_FRAMES_LOST, "server frames were dropped; resume")
            return
        log.warning("broker error", extra={"error": str(error)})

    async def _announce(self) -> None:
        """This gateway's heartbeat, with the TTL a node may wait for the next one."""
        assert self._nc is not None
        beat = json.dumps({"ttl": self.directory.ttl_s}).encode()
        with contextlib.suppress(NatsError):
            await self._nc.publish(gateway_heartbeat_subject(self.gateway), beat)

    async def _watch_nodes(self) -> None:
        while True:
            await asyncio.sleep(self.directory.ttl_s / 4)
            await self._announce()
            self.directory.close_silent()


class BrokerChannel:
    """One IDE connection's frames over NATS, bound to an orchestrator once routed."""

    def __init__(self, link: BrokerLink, nc: Client, principal: str, conn: str) -> None:
        self._link = link
        self._nc = nc
        self._principal = principal
        self._conn = conn
        self.inbox = gateway_subject(link.gateway, conn)
        self._node: str | None = None
        self._asking: str | None = None
        # each frame with the bytes it completes of its message (0 but for the last frame)
        self._frames: asyncio.Queue[tuple[str, int] | None] = asyncio.Queue()
        self._relayed = 0
        self._acknowledged = 0
        self._partial = 0
        self._reassembly = Reassembly()
        self._subscription: Subscription | None = None
        self._close: tuple[int, str] | None = None

    async def listen(self) -> None:
        """Subscribe to this connection's server frames."""
        self._subscription = await self._nc.subscribe(self.inbox, cb=self._receive)

    async def send(self, text: str) -> None:
        """Forward one client frame: to its orchestrator, or routed while there is none."""
        if self._close is not None:
            return
        if self._node is not None:
            with contextlib.suppress(NatsError):
                await self._nc.publish(
                    connection_subject(self._node, self._conn), text.encode(), reply=self.inbox
                )
            return
        await self._route(text)

    async def frames(self) -> AsyncIterator[str]:
        """Server frames until the orchestrator closes the channel or goes silent."""
        while True:
            item = await self._frames.get()
            if item is None:
                return
            text, size = item
            yield text
            # the caller sent it on to the IDE: past `ACK_EVERY` bytes, the node may send more
            self._relayed += size
            if self._relayed - self._acknowledged >= ACK_EVERY:
                await self._acknowledge()

    async def _acknowledge(self) -> None:
        """Tell the node how many bytes of this connection were relayed, so it publishes
        more."""
        if self._node is not None:
            self._acknowledged = self._relayed
            with contextlib.suppress(NatsError):
                await self._nc.publish(
                    connection_subject(self._node, self._conn),
                    b"",
                    headers={ACK: str(self._relayed)},
                )

    @property
    def close_code(self) -> int | None:
        """How the orchestrator closed the channel, once it has."""
        return self._close[0] if self._close else None

    @property
    def close_reason(self) -> str:
        """Why, in the orchestrator's words."""
        return self._close[1] if self._close else ""

    async def close(self) -> None:
        """The relay ended: tell the orchestrator (also after it closed, so it forgets the
        connection), stop listening."""
        if self._node is not None:
            self._link.directory.unbind(self._node, self)
            with contextlib.suppress(NatsError):
                await self._nc.publish(
                    connection_subject(self._node, self._conn),
                    b"",
                    headers={CLOSE: encode_close(1000, "client gone")},
                )
        self._close = self._close or (1000, "")
        self._link.forget(self)
        if self._subscription is not None:
            with contextlib.suppress(NatsError):
                await self._subscription.unsubscribe()

    def end(self, code: int, reason: str) -> None:
        """End the channel from this side (its orchestrator is gone)."""
        if self._close is None:
            self._close = (code, reason)
            self._frames.put_nowait(None)

    async def _route(self, text: str) -> None:
        """Offer the frame to live orchestrators until one answers it for good."""
        directory = self._link.directory
        await directory.heard_all()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._link.route_timeout_s
        request = OpenRequest(self._principal, self.inbox, self._conn, text).encode()
        avoid: set[str] = set()
        node = directory.pick(avoid)
        while loop.time() < deadline:
            if node is None:
                await directory.wait_for_change(RETRY_S)
                node = directory.pick(avoid)
                continue
            self._asking = node
            try:
                answer = await self._nc.request(
                    open_subject(node), request, timeout=REQUEST_TIMEOUT_S
                )
                reply = OpenReply.decode(answer.data)
            except (NoRespondersError, TimeoutError, NatsError, ValueError, TypeError):
                avoid.add(node)
                node = directory.pick(avoid)
                await asyncio.sleep(RETRY_S if node in avoid else 0)
                continue
            if reply.bound:
                self._node = node
                directory.bind(node, self)
                return
            if reply.redirect is not None:
                node = reply.redirect
                continue
            if reply.retry:
                await asyncio.sleep(RETRY_S)
                node = directory.pick(avoid)
                continue
            return
        self.end(CLOSE_UNAVAILABLE, "no orchestrator could take the session; resume later")

    async def _receive(self, message: Msg) -> None:
        headers = message.headers or {}
        if headers.get(NODE) != (self._node or self._asking):
            return  # from a node this connection has moved away from
        if CLOSE in headers:
            self._close = self._close or decode_close(headers[CLOSE])
            if self._node is not None:
                self._link.directory.unbind(self._node, self)
            self._frames.put_nowait(None)
            return
        whole = self._reassembly.add(message.data, headers.get(CHUNK))
        if whole is None:
            # a chunk of a message not whole yet cannot be relayed before the rest comes:
            # it counts as relayed now, or the node would wait for it forever
            self._partial += len(message.data)
            self._relayed += len(message.data)
            if self._relayed - self._acknowledged >= ACK_EVERY:
                await self._acknowledge()
            return
        frames = whole.decode().split("\n")
        for frame in frames[:-1]:
            self._frames.put_nowait((frame, 0))
        self._frames.put_nowait((frames[-1], max(0, len(whole) - self._partial)))
        self._partial = 0
