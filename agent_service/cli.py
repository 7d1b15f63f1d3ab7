"""`agent-service`: one command, a subcommand per service and tool."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module with `configure(parser)` and `run(args) -> int`, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("agent_service.up", "run gateway, orchestrator and llm-proxy together"),
    "demo": ("agent_service.demo", "show the product working offline on a sample workspace"),
    "gateway": ("gateway.cli", "run the gateway: the IDE's WebSocket endpoint"),
    "orchestrator": ("orchestrator.cli", "run the orchestrator: the sessions' state machines"),
    "schema": ("agent_service.schema", "print the JSON Schema of the IDE protocol"),
    "llm-proxy": ("llm_proxy.cli", "run the OpenAI-compatible LLM proxy (default port 8767)"),
    "transcripts": ("agent_service.transcripts", "list, show or export recorded sessions"),
    "replay": ("agent_service.replay", "replay recorded sessions; --verify compares every output"),
    "ide": ("ide_client.cli", "run the reference IDE: tools on a workspace, one turn or a prompt"),
    "bench": ("benchmarks.cli", "measure latency, throughput, CPU and memory per token"),
    "acp": ("acp_agent.cli", "serve an ACP editor (Zed, JetBrains, Neovim) on stdio"),
}


def build_parser() -> argparse.ArgumentParser:
    """The full parser, every subcommand configured by its own module."""
    parser = argparse.ArgumentParser(
        prog="agent-service",
        description="Run an AI coding agent whose tools execute inside the IDE.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=help_text, description=module.__doc__)
        module.configure(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
