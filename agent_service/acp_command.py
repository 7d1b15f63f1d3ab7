"""Run agent-service as an Agent Client Protocol agent on stdio, for Zed, JetBrains, Neovim & co.

The editor starts this command and speaks JSON-RPC on its stdin and stdout; logs go to
stderr. With --url and --token it uses a running gateway; without --url it starts the service
itself (`agent-service up` on free loopback ports, the offline demo model unless an upstream
is given) and stops it when the editor goes away. Edits ask for permission in the default
mode `ask`; `auto-edit` writes without asking, `read-only` refuses every edit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import cast

from acp import run_agent
from acp.interfaces import Agent

from acp_agent import ApprovalMode, Gateway, LocalStack, ServiceAgent, SessionSettings
from agent_service.options import add_llm_upstream, add_number, env
from agent_service.transcript_flags import add_recording_flags
from service_logging import configure_logging


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of `agent-service acp`."""
    parser.add_argument(
        "--url",
        default=env("AGENT_GATEWAY_URL"),
        help="WebSocket URL of a running gateway, e.g. ws://127.0.0.1:8765/v1/ws "
        "(env AGENT_GATEWAY_URL; unset: start the service locally)",
    )
    parser.add_argument(
        "--token",
        default=env("AGENT_TOKEN"),
        help="bearer token of the gateway at --url (env AGENT_TOKEN); without --url, the local "
        "service's token (unset: a new one each run, so sessions cannot be loaded after a restart)",
    )
    parser.add_argument(
        "--mode",
        choices=[mode.value for mode in ApprovalMode],
        default=env("AGENT_ACP_MODE", ApprovalMode.ASK.value),
        help="approval mode new sessions start in (env AGENT_ACP_MODE, default %(default)s)",
    )
    add_number(
        parser,
        "context-window",
        0,
        "the model's context window in tokens, sent as usage_update (0: unknown)",
    )
    # The local service's flags (without --url), as `agent-service up` takes them.
    add_llm_upstream(parser, unset_means="the built-in offline demo model")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the local service's gateway and orchestrator in one process (`up --in-process`)",
    )
    add_recording_flags(parser)


def run(args: argparse.Namespace) -> int:
    """Serve one editor on stdio until it closes the connection."""
    configure_logging("acp")
    if args.url and not args.token:
        print("agent-service acp: --url needs --token (or AGENT_TOKEN)", file=sys.stderr)
        return 2
    return asyncio.run(_serve(args))


async def _serve(args: argparse.Namespace) -> int:
    stack = None
    if args.url:
        fixed = Gateway(args.url, args.token)

        async def source() -> Gateway:
            return fixed

    else:
        key = {"AGENT_LLM_API_KEY": args.llm_api_key} if args.llm_api_key else {}
        stack = LocalStack(_up_args(args), env=key, token=args.token)
        stack.start()
        source = stack.gateway
    settings = SessionSettings(ApprovalMode(args.mode), args.context_window or None)
    agent = ServiceAgent(source, settings)
    # ServiceAgent implements the methods it supports; the SDK answers the others
    # method_not_found, so it is not the whole `Agent` protocol.
    serving = asyncio.create_task(run_agent(cast(Agent, agent)))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, serving.cancel)
    try:
        await serving
    except asyncio.CancelledError:
        pass
    finally:
        with contextlib.suppress(Exception):
            await agent.close()
        if stack is not None:
            await stack.stop()
    return 0


def _up_args(args: argparse.Namespace) -> list[str]:
    """The flags `agent-service up` gets for the local service (the API key goes by env)."""
    out = []
    if args.llm_base_url:
        out += ["--llm-base-url", args.llm_base_url]
    if args.model:
        out += ["--model", args.model]
    if args.in_process:
        out.append("--in-process")
    if args.transcripts:
        out += ["--transcripts", args.transcripts]
        for pattern in args.transcripts_redact:
            if pattern:
                out += ["--transcripts-redact", pattern]
    return out
