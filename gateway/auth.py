"""Who may open a session: bearer tokens from the upgrade request, checked in constant time.

A token comes from `Authorization: Bearer <token>` or, for browsers that
cannot set headers, from a `bearer.<token>` WebSocket subprotocol offered next
to `agent.v1`. Never from the query string. The principal sent on to the
orchestrator is a digest of the token, so the token itself goes no further.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

SUBPROTOCOL = "agent.v1"
_BEARER_SUBPROTOCOL = "bearer."


def presented_token(headers: Mapping[str, str]) -> str | None:
    """The token the client presented, if any."""
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    offered = headers.get("sec-websocket-protocol", "")
    for protocol in (part.strip() for part in offered.split(",")):
        if protocol.startswith(_BEARER_SUBPROTOCOL) and len(protocol) > len(_BEARER_SUBPROTOCOL):
            return protocol[len(_BEARER_SUBPROTOCOL) :]
    return None


def token_matches(presented: str | None, expected: str) -> bool:
    """Constant-time comparison; a missing token never matches."""
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


def principal_of(token: str) -> str:
    """A stable, non-reversible name for the token's owner."""
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def origin_allowed(origin: str | None, allowed: frozenset[str]) -> bool:
    """Requests without Origin (non-browser clients) pass; browser origins must be listed."""
    return origin is None or origin in allowed
