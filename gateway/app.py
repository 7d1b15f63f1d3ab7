"""The gateway's Sanic app: `/v1/ws` for IDEs (protocol v1) and `/healthz`.

Every request but `GET /healthz` passes the Origin and token checks first,
whatever its path: a path variant (`/v1/ws/`, a case or an encoding) is either
the exact route after those checks or a 404, never an unchecked upgrade.

The gateway authenticates, enforces the frame limit, and relays frames
verbatim between the IDE and the orchestrator. It parses nothing on the
per-token path and holds no session state: any gateway process can serve any
reconnecting IDE.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sanic import Request, Sanic, Websocket, json
from sanic.exceptions import NotFound
from sanic.response import HTTPResponse

from gateway.auth import SUBPROTOCOL, origin_allowed, presented_token, principal_of, token_matches
from gateway.health import answers_healthy
from gateway.link import LinkError, OrchestratorLink, SessionChannel
from gateway.sanic_websocket import CLOSE_INVALID_DATA, NOT_UTF8, SubprotocolOptionalProtocol
from service_logging import ThrottledLog, throttle_accept_errors
from wire import AgentServiceError, Error, ErrorCode, ErrorSource, encode

log = logging.getLogger(__name__)
_refusals = ThrottledLog(log)
_overloads = ThrottledLog(log)
_slow_clients = ThrottledLog(log)

WS_PATH = "/v1/ws"
HEALTH_PATH = "/healthz"
_OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
DEFAULT_MAX_FRAME_BYTES = 4 * 1024 * 1024
CLOSE_GOING_AWAY = 1001
CLOSE_NORMAL = 1000
CLOSE_ABNORMAL = 1006
CLOSE_UNAVAILABLE = 1011
CLOSE_TRY_AGAIN_LATER = 1013
DEFAULT_MAX_CONNECTIONS = 2_000
DEFAULT_CLIENT_SEND_TIMEOUT_S = 30.0
CLOSE_TOO_SLOW = 4008
HEALTH_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """What the gateway checks and where it relays."""

    token: str
    orchestrator_health_url: str | None
    proxy_health_url: str | None
    allowed_origins: frozenset[str] = field(default_factory=frozenset)
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    client_send_timeout_s: float = DEFAULT_CLIENT_SEND_TIMEOUT_S


Members = Callable[[], Awaitable[list[str]]]
"""The orchestrators live on a broker now; raises LinkError when the broker cannot say."""


def build_app(
    settings: GatewaySettings,
    link: OrchestratorLink,
    name: str = "gateway",
    members: Members | None = None,
) -> Sanic[Any, Any]:
    """The gateway app, relaying through `link`; on a broker, `members` tells /healthz which
    orchestrators hold a lease."""
    app: Sanic[Any, Any] = Sanic(name, configure_logging=False, strict_slashes=True)
    app.config.WEBSOCKET_MAX_SIZE = settings.max_frame_bytes * 4
    # uvloop can drop a SIGTERM that lands during Sanic's startup; asyncio's loop cannot.
    app.config.USE_UVLOOP = False
    app.config.WEBSOCKET_PING_INTERVAL = 20
    app.config.WEBSOCKET_PING_TIMEOUT = 20
    app.ctx.connections = 0
    app.before_server_start(_stop_on_hangup)

    @app.before_server_start
    async def quiet_accept_failures(app: Sanic[Any, Any]) -> None:
        throttle_accept_errors(asyncio.get_running_loop())

    @app.on_request
    async def authenticate(request: Request) -> HTTPResponse | None:
        if request.path == HEALTH_PATH and request.method in ("GET", "HEAD"):
            return None
        if not origin_allowed(request.headers.get("origin"), settings.allowed_origins):
            _refusals.warning("origin refused", origin=request.headers.get("origin"))
            return json(_http_error("origin_not_allowed", "this Origin is not allowed"), 403)
        token = presented_token(request.headers)
        if not token_matches(token, settings.token):
            _refusals.warning("unauthorized request", remote=request.remote_addr or request.ip)
            return json(_http_error("unauthorized", "missing or wrong bearer token"), 401)
        request.ctx.principal = principal_of(token or "")
        return None

    @app.exception(NotFound)
    async def not_found(request: Request, exception: NotFound) -> HTTPResponse:
        return json(_http_error("not_found", f"no route {request.path}"), 404)

    @app.get(HEALTH_PATH)
    async def healthz(request: Request) -> HTTPResponse:
        targets = {
            "orchestrator": settings.orchestrator_health_url,
            "llm_proxy": settings.proxy_health_url,
        }
        checked = {name: url for name, url in targets.items() if url}
        results = await asyncio.gather(*(answers_healthy(url) for url in checked.values()))
        status: dict[str, Any] = dict(zip(checked, results, strict=True))
        if members is not None:
            live = await _members_or_none(members)
            status = {"orchestrator": bool(live), "orchestrators": live or [], **status}
        healthy = all(value for value in status.values() if isinstance(value, bool))
        return json({"status": "ok" if healthy else "degraded", **status}, 200 if healthy else 503)

    async def ide_socket(request: Request, ws: Websocket) -> None:
        if app.ctx.connections >= settings.max_connections:
            message = f"this gateway serves its limit of {settings.max_connections} connections"
            await _refuse(
                ws, ErrorCode.SESSION_LIMIT, message, CLOSE_TRY_AGAIN_LATER, "gateway full"
            )
            return
        app.ctx.connections += 1
        try:
            try:
                channel = await link.open(request.ctx.principal)
            except LinkError as exc:
                if exc.errno in _OUT_OF_DESCRIPTORS:
                    _overloads.warning("no descriptor for the orchestrator link", reason=str(exc))
                    message = "this gateway is out of connections now; retry later"
                    await _refuse(
                        ws, ErrorCode.SESSION_LIMIT, message, CLOSE_TRY_AGAIN_LATER, "gateway full"
                    )
                else:
                    await _refuse(
                        ws, exc.code, str(exc), CLOSE_UNAVAILABLE, "orchestrator unavailable"
                    )
                return
            await _relay(ws, channel, settings)
        finally:
            app.ctx.connections -= 1

    app.add_websocket_route(ide_socket, WS_PATH, subprotocols=[SUBPROTOCOL])
    return app


async def _members_or_none(members: Members) -> list[str] | None:
    """The live orchestrators, or None when the broker does not answer in time."""
    try:
        return await asyncio.wait_for(members(), HEALTH_TIMEOUT_S)
    except (LinkError, TimeoutError):
        return None


async def _stop_on_hangup(app: Sanic[Any, Any]) -> None:
    """A closed terminal (SIGHUP) stops the gateway as cleanly as SIGINT and SIGTERM do."""
    asyncio.get_running_loop().add_signal_handler(
        signal.SIGHUP, functools.partial(app.stop, terminate=False)
    )


def serve(app: Sanic[Any, Any], host: str, port: int) -> None:
    """Run the gateway app in this process until SIGINT/SIGTERM/SIGHUP."""
    app.run(
        host=host,
        port=port,
        single_process=True,
        access_log=False,
        motd=False,
        protocol=SubprotocolOptionalProtocol,
    )


async def _refuse(ws: Websocket, code: str, message: str, close_code: int, reason: str) -> None:
    """Tell the IDE why it cannot be served (`fatal`), then close."""
    await ws.send(_frame_error(code, message, fatal=True))
    await ws.close(close_code, reason)


class ClientTooSlow(AgentServiceError):
    """The IDE read nothing for the send timeout while frames waited for it."""

    code = "client_too_slow"


async def _relay(ws: Websocket, channel: SessionChannel, settings: GatewaySettings) -> None:
    """Pump frames both ways until either side stops, then close the other with a fitting code.

    The IDE's socket is closed explicitly in every case: when the IDE itself closed,
    that answers its close frame at once instead of after Sanic's close timeout. An IDE
    that stops reading is failed with 4008 at once: a close handshake could not reach it.
    """
    from_ide = asyncio.create_task(_ide_to_orchestrator(ws, channel, settings.max_frame_bytes))
    to_ide = asyncio.create_task(_orchestrator_to_ide(ws, channel, settings.client_send_timeout_s))
    try:
        await asyncio.wait({from_ide, to_ide}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        closing = _close_for(from_ide, to_ide, channel)
        for task in (from_ide, to_ide):
            task.cancel()
        await asyncio.gather(from_ide, to_ide, return_exceptions=True)
        await channel.close()
    if closing is not None and closing[0] == CLOSE_TOO_SLOW:
        ws.fail_connection(*closing)
        return
    await ws.close(*(closing or (CLOSE_NORMAL, "")))


def _close_for(
    from_ide: asyncio.Task[None], to_ide: asyncio.Task[None], channel: SessionChannel
) -> tuple[int, str] | None:
    """How to close the IDE's socket, or None when the IDE itself went away."""
    if from_ide.done() and not from_ide.cancelled():
        failure = from_ide.exception()
        if isinstance(failure, UnicodeDecodeError):
            return CLOSE_INVALID_DATA, NOT_UTF8
        if failure is not None:
            log.error("relay from the IDE failed", exc_info=failure)
            return CLOSE_UNAVAILABLE, "gateway error"
        return None
    if to_ide.done() and not to_ide.cancelled():
        if isinstance(to_ide.exception(), ClientTooSlow):
            _slow_clients.warning("client read nothing for the send timeout, disconnecting")
            return CLOSE_TOO_SLOW, "client too slow; resume to continue"
        code = channel.close_code or CLOSE_UNAVAILABLE
        reason = channel.close_reason or "orchestrator closed the session link"
        return (CLOSE_UNAVAILABLE if code == CLOSE_ABNORMAL else code), reason
    return None


async def _ide_to_orchestrator(
    ws: Websocket, channel: SessionChannel, max_frame_bytes: int
) -> None:
    async for message in ws:
        if isinstance(message, bytes | bytearray):
            await ws.send(_frame_error(ErrorCode.INVALID_FRAME, "frames must be UTF-8 JSON text"))
            continue
        if len(message) > max_frame_bytes // 4 and len(message.encode()) > max_frame_bytes:
            await ws.send(
                _frame_error(ErrorCode.TOO_LARGE, f"frame is over the {max_frame_bytes} byte limit")
            )
            continue
        await channel.send(message)


async def _orchestrator_to_ide(
    ws: Websocket, channel: SessionChannel, send_timeout_s: float
) -> None:
    """Relay every server frame; a send to the IDE still unfinished after `send_timeout_s`
    (up to a quarter more) raises ClientTooSlow."""
    loop = asyncio.get_running_loop()
    watchdog = _SendWatchdog(send_timeout_s)
    try:
        async for text in channel.frames():
            watchdog.sending_since = loop.time()
            await ws.send(text)
            watchdog.sending_since = None
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if watchdog.fired and task is not None:
            task.uncancel()
            raise ClientTooSlow from None
        raise
    finally:
        watchdog.stop()


class _SendWatchdog:
    """Cancels the relay task whose current send has lasted the timeout.

    One timer per connection, looking every quarter of the timeout: the relay only stores
    when each send starts and clears it when it ends, where a timeout armed and cancelled
    around every send would push and cancel a timer for every token.
    """

    def __init__(self, timeout_s: float) -> None:
        self.sending_since: float | None = None
        self.fired = False
        self._timeout_s = timeout_s
        self._task = asyncio.current_task()
        self._loop = asyncio.get_running_loop()
        self._handle = self._loop.call_later(timeout_s / 4, self._check)

    def stop(self) -> None:
        """The relay ended: look no more."""
        self._handle.cancel()

    def _check(self) -> None:
        since = self.sending_since
        if since is not None and self._loop.time() - since >= self._timeout_s:
            self.fired = True
            if self._task is not None:
                self._task.cancel()
            return
        self._handle = self._loop.call_later(self._timeout_s / 4, self._check)


def _frame_error(code: str, message: str, fatal: bool = False) -> str:
    return encode(Error(code=code, message=message, source=ErrorSource.PROTOCOL, fatal=fatal))


def _http_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}
