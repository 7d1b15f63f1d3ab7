"""`agent-service`: one command, a subcommand per service and tool."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import NoReturn

from agent_service import config_file
from agent_service.failures import OperatorError, from_os_error, report
from service_logging import add_logging_flags, export_logging_flags

# name -> (module with `configure(parser)` and `run(args) -> int`, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("agent_service.up", "run gateway, orchestrator and llm-proxy together"),
    "cluster": (
        "agent_service.cluster",
        "run a local cluster: NATS, M orchestrators and N gateways on a broker",
    ),
    "demo": ("agent_service.demo", "show the product working offline on a sample workspace"),
    "gateway": ("agent_service.gateway_command", "run the gateway: the IDE's WebSocket endpoint"),
    "orchestrator": (
        "agent_service.orchestrator_command",
        "run the orchestrator: the sessions' state machines",
    ),
    "schema": ("agent_service.schema", "print the JSON Schema of the IDE protocol"),
    "llm-proxy": (
        "agent_service.proxy_command",
        "run the OpenAI-compatible LLM proxy (default port 8767)",
    ),
    "transcripts": ("agent_service.transcripts", "list, show or export recorded sessions"),
    "replay": ("agent_service.replay", "replay recorded sessions; --verify compares every output"),
    "ide": (
        "agent_service.ide_command",
        "run the reference IDE: tools on a workspace, one turn or a prompt",
    ),
    "bench": ("benchmarks.cli", "measure latency, throughput, CPU and memory per token"),
    "acp": ("agent_service.acp_command", "serve an ACP editor (Zed, JetBrains, Neovim) on stdio"),
}

EXIT_BROKEN_PIPE = 141  # what a shell reports for a program ended by SIGPIPE


def version() -> str:
    """The installed package's version."""
    try:
        return metadata.version("agent-service")
    except metadata.PackageNotFoundError:
        return "unknown"


class CommandParser(argparse.ArgumentParser):
    """argparse with the project's one error line (`agent-service <command>: ... (see --help)`)."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    """The full parser, every subcommand configured by its own module."""
    parser = CommandParser(
        prog="agent-service",
        description="Run an AI coding agent whose tools execute inside the IDE.",
    )
    _add_version(parser)
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=CommandParser
    )
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=help_text, description=module.__doc__)
        _add_version(command)
        module.configure(command)
        add_logging_flags(command)
        config_file.add_config_flag(command)
        command.set_defaults(run=module.run)
    return parser


def commands_of(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommands' parsers by name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _add_version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--version",
        action="version",
        version=f"agent-service {version()}",
        help="print the version",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script: operator mistakes are one line, never a traceback."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    path = config_file.chosen_path(arguments)
    try:
        if path is not None:
            config_file.apply(commands_of(parser), config_file.load(path), path)
    except OperatorError as failure:
        return report("", failure)
    args = parser.parse_args(arguments)
    export_logging_flags(args)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except OperatorError as failure:
        return report(args.command, failure)
    except OSError as exc:
        return report(args.command, from_os_error(exc))


def _silence_stdout() -> None:
    """The reader went away (`| head`): point stdout at /dev/null so exit flushes nothing."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
