"""The gateway: the Sanic app IDEs connect to, and its link to the orchestrator."""

from gateway.app import (
    DEFAULT_CLIENT_SEND_TIMEOUT_S,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_FRAME_BYTES,
    GatewaySettings,
    build_app,
    serve,
)
from gateway.broker_link import BrokerLink
from gateway.link import LinkError, OrchestratorLink, SessionChannel, WebSocketLink

__all__ = [
    "DEFAULT_CLIENT_SEND_TIMEOUT_S",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_FRAME_BYTES",
    "BrokerLink",
    "GatewaySettings",
    "LinkError",
    "OrchestratorLink",
    "SessionChannel",
    "WebSocketLink",
    "build_app",
    "serve",
]
