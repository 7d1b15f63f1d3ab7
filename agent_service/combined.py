"""Gateway and orchestrator in one process, linked in memory; the llm-proxy as a child process.

The mode `agent-service up --in-process` runs, and the benchmark measures
against the three-process stack. The orchestrator's settings come from the
same environment variables as `agent-service orchestrator` (AGENT_MAX_STEPS,
AGENT_MAX_SESSIONS_PER_TOKEN, AGENT_GRACE_PERIOD, ...).
"""

from __future__ import annotations

import argparse
from typing import Any

from agent_service.gateway_command import add_limits as add_gateway_limits
from agent_service.inprocess_link import InProcessLink
from agent_service.options import env
from agent_service.orchestrator_command import build_registry
from agent_service.orchestrator_command import configure as configure_orchestrator
from agent_service.stack import ServiceStack, StackConfig
from gateway.app import GatewaySettings, build_app, serve
from orchestrator.recording import Recorder, flushed_in_background
from service_logging import configure_logging


def run_combined(config: StackConfig, proxy_stack: ServiceStack, recorder: Recorder) -> int:
    """Start the proxy child, serve gateway+orchestrator here until a signal, stop the child."""
    configure_logging("gateway+orchestrator")
    proxy_stack.start(services=("llm-proxy",))
    recording = flushed_in_background(recorder)
    registry = build_registry(_orchestrator_flags(config), recording)
    limits = _gateway_limits(config)
    settings = GatewaySettings(
        token=config.token,
        orchestrator_health_url=None,
        proxy_health_url=f"http://{config.host}:{config.proxy_port}",
        max_frame_bytes=limits.max_frame_bytes,
        max_connections=limits.max_connections,
        client_send_timeout_s=limits.client_send_timeout,
    )
    app = build_app(settings, InProcessLink(registry), name="gateway_in_process")

    @app.after_server_stop
    async def close_sessions(*_: Any) -> None:
        registry.close_all()

    try:
        serve(app, config.host, config.gateway_port)
    finally:
        recording.close()
        proxy_stack.stop()
    return 0


def _gateway_limits(config: StackConfig) -> argparse.Namespace:
    """The gateway's limits `up` was given, read as `agent-service gateway` reads them."""
    parser = argparse.ArgumentParser()
    add_gateway_limits(parser)
    return parser.parse_args(config.extra_args.get("gateway", []))


def _orchestrator_flags(config: StackConfig) -> argparse.Namespace:
    """The orchestrator's flags as `agent-service orchestrator` would read them here."""
    parser = argparse.ArgumentParser()
    configure_orchestrator(parser)
    argv = ["--llm-base-url", f"http://{config.host}:{config.proxy_port}/v1"]
    if config.proxy_key:
        argv += ["--llm-api-key", config.proxy_key]
    if config.model:
        argv += ["--model", config.model]
    return parser.parse_args([*argv, *config.extra_args.get("orchestrator", [])])


def add_in_process_flag(parser: argparse.ArgumentParser) -> None:
    """--in-process for `agent-service up`."""
    parser.add_argument(
        "--in-process",
        action="store_true",
        default=env("AGENT_IN_PROCESS") in ("1", "true", "yes"),
        help="run gateway and orchestrator in one process, linked in memory "
        "(the llm-proxy stays its own process; env AGENT_IN_PROCESS=1)",
    )
