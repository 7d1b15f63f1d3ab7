"""How many sessions a token holds across the cluster, so that `--max-sessions-per-token`
caps the token and not each orchestrator on its own.

A node about to open a session for a token asks every other live node on `agent.census`;
each answers with the sessions it holds for that token (attached, or detached within their
grace period), as the single-machine registry counts them. A node that does not answer
within `CENSUS_TIMEOUT_S` counts as holding none (and when the broker cannot list the nodes,
none is asked): a slow peer or broker lets a session open rather than refuse one. Opens for one token on several nodes at the same instant may each miss the
others', so a burst can pass the cap by at most the number of nodes opening at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError

from wire.broker import CENSUS, CensusReply, CensusRequest

log = logging.getLogger(__name__)

CENSUS_TIMEOUT_S = 0.5


class SessionCensus:
    """Answers the census for this node's sessions and asks it of the other nodes."""

    def __init__(
        self,
        nc: Client,
        node: str,
        held_here: Callable[[str], int],
        peers: Callable[[], Awaitable[list[str]]],
    ) -> None:
        """`held_here(principal)`: this node's sessions of a token; `peers()`: the other
        nodes holding a lease now."""
        self._nc = nc
        self._node = node
        self._held_here = held_here
        self._peers = peers
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        """Answer the other nodes' census requests."""
        self._subscription = await self._nc.subscribe(CENSUS, cb=self._answer)

    async def stop(self) -> None:
        """Answer no more."""
        if self._subscription is not None:
            with contextlib.suppress(NatsError):
                await self._subscription.unsubscribe()

    async def held_elsewhere(self, principal: str) -> int:
        """The sessions `principal` holds on the other live nodes."""
        try:
            peers = set(await self._peers()) - {self._node}
        except (NatsError, TimeoutError) as exc:
            log.warning("census skipped: no list of nodes", extra={"error": str(exc)})
            return 0
        if not peers:
            return 0
        inbox = self._nc.new_inbox()
        replies = await self._nc.subscribe(inbox, max_msgs=len(peers))
        counts: dict[str, int] = {}
        try:
            with contextlib.suppress(NatsError, TimeoutError):
                await self._nc.publish(
                    CENSUS, CensusRequest(principal, self._node).encode(), reply=inbox
                )
                deadline = asyncio.get_running_loop().time() + CENSUS_TIMEOUT_S
                while left := peers - counts.keys():
                    wait = deadline - asyncio.get_running_loop().time()
                    if wait <= 0:
                        break
                    with contextlib.suppress(ValueError, TypeError):
                        reply = CensusReply.decode((await replies.next_msg(wait)).data)
                        if reply.node in left:
                            counts[reply.node] = reply.sessions
        finally:
            with contextlib.suppress(NatsError):
                await replies.unsubscribe()
        silent = peers - counts.keys()
        if silent:
            log.warning("census unanswered", extra={"nodes": sorted(silent)})
        return sum(counts.values())

    async def _answer(self, message: Msg) -> None:
        try:
            request = CensusRequest.decode(message.data)
        except (ValueError, TypeError):
            log.warning("malformed census request")
            return
        if request.node == self._node or not message.reply:
            return
        reply = CensusReply(self._node, self._held_here(request.principal))
        with contextlib.suppress(NatsError):
            await message.respond(reply.encode())
