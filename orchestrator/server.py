"""The orchestrator's server: the internal WebSocket the gateway relays IDE frames over.

`GET /v1/link` (WebSocket): one connection per IDE connection. Frames are IDE
protocol v1 frames, relayed verbatim both ways. The gateway authenticates the
IDE and sends `X-Agent-Principal` (a digest of the IDE's token) so a session
can only be resumed by the token that opened it; the link itself is protected
by `Authorization: Bearer <internal token>` when one is configured. A request
with an `Origin` header comes from a browser page, never from the gateway: it
is refused (403) on every path but `/healthz`, so a page cannot open the link
even where no internal token is set.
`GET /healthz` answers 200 while the process serves, 503 `degraded` while the
transcript store cannot write.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import signal
from dataclasses import dataclass
from http import HTTPStatus

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from orchestrator.endpoint import ClientEndpoint
from orchestrator.link import LinkConnection
from orchestrator.sessions import SessionRegistry
from service_logging import throttle_accept_errors
from wire import PRINCIPAL_HEADER

log = logging.getLogger(__name__)

LINK_PATH = "/v1/link"
LINK_MAX_FRAME = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Where the orchestrator listens and what the link requires."""

    host: str = "127.0.0.1"
    port: int = 8766
    internal_token: str | None = None
    drain_timeout_s: float = 30.0


class OrchestratorServer:
    """Accepts gateway connections and routes their frames to sessions."""

    def __init__(self, registry: SessionRegistry, settings: ServerSettings) -> None:
        self.registry = registry
        self.settings = settings
        self._server: Server | None = None

    async def start(self) -> None:
        """Listen; returns once the socket is bound."""
        throttle_accept_errors(asyncio.get_running_loop())
        self._server = await serve(
            self._handle,
            self.settings.host,
            self.settings.port,
            process_request=self._process_request,
            compression=None,
            max_size=LINK_MAX_FRAME,
            ping_interval=20,
        )

    async def serve_until_signalled(self) -> None:
        """Serve until SIGINT, SIGTERM or SIGHUP, then close every link with 1001 and stop."""
        await self.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, stop.set)
        log.info(
            "orchestrator listening", extra={"host": self.settings.host, "port": self.settings.port}
        )
        await stop.wait()
        await self.shutdown()

    async def shutdown(self) -> None:
        """Stop accepting, let running turns finish up to the drain timeout, close the links."""
        assert self._server is not None
        self._server.close(close_connections=False)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.drain_timeout_s
        while self.registry.turns_running() and loop.time() < deadline:
            await asyncio.sleep(0.05)
        log.info("orchestrator stopping", extra={"turns_cut": self.registry.turns_running()})
        self.registry.close_all()
        for connection in list(self._server.connections):
            await connection.close(1001, "orchestrator shutting down")
        await self._server.wait_closed()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/healthz":
            return self._health()
        if request.headers.get("Origin") is not None:
            return connection.respond(HTTPStatus.FORBIDDEN, "browsers may not open the link\n")
        if path != LINK_PATH:
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        expected = self.settings.internal_token
        if expected is not None:
            presented = request.headers.get("Authorization", "")
            if not hmac.compare_digest(presented.encode(), f"Bearer {expected}".encode()):
                return connection.respond(HTTPStatus.UNAUTHORIZED, "unauthorized\n")
        return None

    def _health(self) -> Response:
        """200 while everything works; 503 `degraded` naming what does not (the transcripts)."""
        problem = self.registry.store_problem()
        body: dict[str, object] = {
            "status": "ok" if problem is None else "degraded",
            "sessions": len(self.registry),
            "attached": self.registry.attached(),
            "history_chars": self.registry.history_chars(),
        }
        if problem is not None:
            body["transcripts"] = problem
        status, reason = (200, "OK") if problem is None else (503, "Service Unavailable")
        headers = Headers({"Content-Type": "application/json"})
        return Response(status, reason, headers, json.dumps(body).encode())

    async def _handle(self, websocket: ServerConnection) -> None:
        assert websocket.request is not None
        principal = websocket.request.headers.get(PRINCIPAL_HEADER, "anonymous")
        link = LinkConnection(websocket)
        endpoint = ClientEndpoint(self.registry, principal, link)
        try:
            async for message in websocket:
                endpoint.handle_frame(message)
        except ConnectionClosed:
            pass
        finally:
            endpoint.close()
            await link.finish()
