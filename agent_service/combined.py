"""Gateway and orchestrator in one process, linked in memory; the llm-proxy as a child process.

The mode `agent-service up --in-process` runs, and the benchmark measures
against the three-process stack. The orchestrator's settings come from the
same environment variables as `agent-service orchestrator` (AGENT_MAX_STEPS,
AGENT_MAX_SESSIONS_PER_TOKEN, AGENT_GRACE_PERIOD, ...).
"""

from __future__ import annotations

import argparse
from typing import Any

from agent_service.inprocess_link import InProcessLink
from agent_service.options import env
from agent_service.orchestrator_command import build_registry
from agent_service.stack import ServiceStack, StackConfig
from gateway import GatewaySettings, build_app, serve
from orchestrator import LlmSettings, Recorder, flushed_in_background
from service_logging import configure_logging


def run_combined(
    config: StackConfig, args: argparse.Namespace, proxy_stack: ServiceStack, recorder: Recorder
) -> int:
    """Start the proxy child, serve gateway+orchestrator here until a signal, stop the child.

    `args` are `up`'s: the orchestrator's and the gateway's limits it takes and passes on."""
    configure_logging("gateway+orchestrator")
    proxy_stack.start(services=("llm-proxy",))
    recording = flushed_in_background(recorder)
    llm = LlmSettings(
        base_url=f"http://{config.host}:{config.proxy_port}/v1",
        api_key=config.proxy_key or None,
        model=config.model,
        read_timeout_s=args.llm_read_timeout,
    )
    registry = build_registry(args, recording, llm)
    settings = GatewaySettings(
        token=config.token,
        orchestrator_health_url=None,
        proxy_health_url=f"http://{config.host}:{config.proxy_port}",
        max_frame_bytes=args.max_frame_bytes,
        max_connections=args.max_connections,
        client_send_timeout_s=args.client_send_timeout,
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


def add_in_process_flag(parser: argparse.ArgumentParser) -> None:
    """--in-process for `agent-service up`."""
    parser.add_argument(
        "--in-process",
        action="store_true",
        default=env("AGENT_IN_PROCESS") in ("1", "true", "yes"),
        help="run gateway and orchestrator in one process, linked in memory "
        "(the llm-proxy stays its own process; env AGENT_IN_PROCESS=1)",
    )
