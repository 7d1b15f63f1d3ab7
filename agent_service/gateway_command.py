"""Run the gateway: the IDE's authenticated WebSocket endpoint, relaying to the orchestrator."""

from __future__ import annotations

import argparse
import logging
import secrets
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from sanic import Sanic

from agent_service.options import (
    DEFAULT_GATEWAY_PORT,
    DEFAULT_ORCHESTRATOR_PORT,
    DEFAULT_PROXY_PORT,
    add_broker,
    add_host,
    add_internal_token,
    add_number,
    add_port,
    add_token,
    env,
)
from gateway import (
    DEFAULT_CLIENT_SEND_TIMEOUT_S,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_FRAME_BYTES,
    GatewaySettings,
    OrchestratorLink,
    WebSocketLink,
    build_app,
    serve,
)

if TYPE_CHECKING:
    from gateway import BrokerLink
from service_logging import configure_logging

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of `agent-service gateway`."""
    add_host(parser)
    add_port(parser, "gateway", DEFAULT_GATEWAY_PORT)
    add_token(parser)
    add_internal_token(parser)
    parser.add_argument(
        "--orchestrator-url",
        default=env(
            "AGENT_ORCHESTRATOR_URL", f"ws://127.0.0.1:{DEFAULT_ORCHESTRATOR_PORT}/v1/link"
        ),
        help="the orchestrator's internal WebSocket (env AGENT_ORCHESTRATOR_URL, "
        "default %(default)s)",
    )
    parser.add_argument(
        "--proxy-url",
        default=env("AGENT_PROXY_URL", f"http://127.0.0.1:{DEFAULT_PROXY_PORT}"),
        help="the llm-proxy, checked by /healthz; 'none' to skip (env AGENT_PROXY_URL, "
        "default %(default)s)",
    )
    parser.add_argument(
        "--allowed-origin",
        action="append",
        default=[o for o in (env("AGENT_ALLOWED_ORIGINS") or "").split(",") if o],
        help="a browser Origin allowed to connect; repeatable (env AGENT_ALLOWED_ORIGINS, "
        "comma-separated; default: none)",
    )
    add_broker(parser)
    add_limits(parser)


def add_limits(parser: argparse.ArgumentParser) -> None:
    """The gateway's limits; `agent-service up` takes and passes them on too."""
    add_number(parser, "max-frame-bytes", DEFAULT_MAX_FRAME_BYTES, "largest client frame accepted")
    add_number(
        parser,
        "client-send-timeout",
        DEFAULT_CLIENT_SEND_TIMEOUT_S,
        "seconds an IDE may read nothing while frames wait for it; then it is closed with "
        "4008 and may resume",
    )
    add_number(
        parser,
        "max-connections",
        DEFAULT_MAX_CONNECTIONS,
        "IDE connections this gateway serves at once",
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM."""
    configure_logging("gateway")
    token = args.token
    if not token:
        token = secrets.token_hex(24)
        print(f"gateway token (generated): {token}", file=sys.stderr, flush=True)
    orchestrator_health = args.orchestrator_url.replace("ws://", "http://").replace(
        "wss://", "https://"
    )
    link: OrchestratorLink = WebSocketLink(args.orchestrator_url, args.internal_token)
    if args.broker:
        # imported here: a gateway without a broker never loads the NATS client
        from gateway import BrokerLink

        link = broker_link = BrokerLink(args.broker)
    settings = GatewaySettings(
        token=token,
        orchestrator_health_url=None if args.broker else orchestrator_health.rsplit("/v1/", 1)[0],
        proxy_health_url=None if args.proxy_url == "none" else args.proxy_url,
        allowed_origins=frozenset(args.allowed_origin),
        max_frame_bytes=args.max_frame_bytes,
        max_connections=args.max_connections,
        client_send_timeout_s=args.client_send_timeout,
    )
    app = build_app(settings, link, members=broker_link.members if args.broker else None)
    if args.broker:
        app.before_server_start(_connect_early(broker_link))
    log.info("gateway listening", extra={"host": args.host, "port": args.gateway_port})
    serve(app, args.host, args.gateway_port)
    return 0


def _connect_early(link: BrokerLink) -> Callable[[Sanic[Any, Any]], Coroutine[Any, Any, None]]:
    """A start-up listener: be on the broker, hearing orchestrators, before the first IDE."""

    async def connect(app: Sanic[Any, Any]) -> None:
        await link.connection()

    return connect
