"""Show the product working, offline: the stack with the demo model, the reference IDE, a sample repo.

Starts llm-proxy, orchestrator and gateway as three processes, creates a sample
git workspace, runs "Add logging to src/auth.js" through the reference IDE
(streamed text and one line per tool call), prints the resulting `git diff`,
and stops everything.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from agent_service.options import (
    DEFAULT_GATEWAY_PORT,
    DEFAULT_ORCHESTRATOR_PORT,
    DEFAULT_PROXY_PORT,
    env,
)
from agent_service.stack import ServiceStack, StackConfig, StackError
from ide_client import ConsoleDisplay, IdeClient, ToolRunner, Workspace, create_sample_workspace
from wire import SessionState

DEMO_MESSAGE = "Add logging to src/auth.js"


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of `agent-service demo`."""
    parser.add_argument(
        "--workspace",
        type=Path,
        default=env("AGENT_DEMO_WORKSPACE"),
        help="where to create the sample git workspace "
        "(env AGENT_DEMO_WORKSPACE; default: a new temporary directory)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 when the turn ended `done`."""
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="agent-service-demo-"))
    create_sample_workspace(workspace)
    config = StackConfig(
        host="127.0.0.1",
        gateway_port=_port_or_free(DEFAULT_GATEWAY_PORT),
        orchestrator_port=_port_or_free(DEFAULT_ORCHESTRATOR_PORT),
        proxy_port=_port_or_free(DEFAULT_PROXY_PORT),
        token=secrets.token_hex(24),
        internal_token=secrets.token_hex(24),
        proxy_key=secrets.token_hex(24),
    )
    log_path = workspace.parent / f"{workspace.name}-services.log"
    _say(f"Starting gateway, orchestrator and llm-proxy (offline demo model); logs: {log_path}")
    with log_path.open("ab") as log:
        stack = ServiceStack(config, output=log)
        try:
            stack.start()
        except StackError as exc:
            _say(f"demo: {exc}")
            return 1
        try:
            _say(f"Sample workspace: {workspace}")
            _say(f"IDE > {DEMO_MESSAGE}\n")
            done = asyncio.run(_run_turn(config, workspace))
        finally:
            stack.stop()
    _say("\ngit diff of the workspace after the turn:\n")
    subprocess.run(["git", "--no-pager", "diff"], cwd=workspace, check=False)
    return 0 if done else 1


async def _run_turn(config: StackConfig, workspace: Path) -> bool:
    client = IdeClient(
        config.gateway_url,
        config.token,
        ToolRunner(Workspace(workspace)),
        display=ConsoleDisplay(sys.stdout),
    )
    async with client:
        turn = await client.run_turn(DEMO_MESSAGE)
    return turn.state is SessionState.DONE


def _port_or_free(port: int) -> int:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
