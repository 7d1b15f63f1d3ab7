"""The one place the gateway reaches into Sanic's internals: its WebSocket protocol, adapted.

Sanic has no public hook for three things the gateway's contract needs, so this
module subclasses its internal `WebSocketProtocol` and swaps the frame
assembler of each connection. Nothing else in the project imports Sanic's
`server.*` modules. `tests/test_gateway_sanic_adapter.py` checks every internal
named here against the installed Sanic and fails when an upgrade changes one.
"""

from __future__ import annotations

import socket
from typing import Any

from sanic import Request
from sanic.server.protocols.websocket_protocol import WebSocketProtocol
from sanic.server.websockets.frame import WebsocketFrameAssembler
from websockets.frames import Frame

CLOSE_INVALID_DATA = 1007
NOT_UTF8 = "frames must be UTF-8"


class SubprotocolOptionalProtocol(WebSocketProtocol):
    """Sanic's WebSocket protocol with three fixes the gateway's contract needs.

    - TCP_NODELAY on every accepted connection: Sanic's listening socket has
      proto 0, so asyncio never sets it, and a small frame after a quiet spell
      waits for the peer's delayed ACK (~40 ms) under Nagle's algorithm.
    - Subprotocols are optional: Sanic's handshake refuses clients that offer
      none once a route declares one; browsers offer `agent.v1`, native IDEs
      authenticate with a header and offer nothing.
    - A text frame that is not UTF-8 closes the connection with 1007, as
      RFC 6455 says; Sanic raises in a background task instead and leaves the
      connection hanging.
    """

    def connection_made(self, transport: Any) -> None:
        connection = transport.get_extra_info("socket")
        if connection is not None and connection.family in (socket.AF_INET, socket.AF_INET6):
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)  # type: ignore[no-untyped-call]  # Sanic: untyped

    async def websocket_handshake(self, request: Request, subprotocols: Any = None) -> Any:
        offered = request.headers.get("sec-websocket-protocol")
        ws = await super().websocket_handshake(request, subprotocols if offered else None)
        ws.assembler = Utf8EnforcingAssembler(ws)
        return ws


class Utf8EnforcingAssembler(WebsocketFrameAssembler):
    """Fails the connection with 1007 when a text frame is not UTF-8."""

    async def put(self, frame: Frame) -> None:
        try:
            await super().put(frame)
        except UnicodeDecodeError:
            self.protocol.fail_connection(CLOSE_INVALID_DATA, NOT_UTF8)
