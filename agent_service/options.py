"""Command-line flags shared by several commands, each with its environment variable."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_GATEWAY_PORT = 8765
DEFAULT_ORCHESTRATOR_PORT = 8766
DEFAULT_PROXY_PORT = 8767


def env(name: str, default: str | None = None, *fallbacks: str) -> str | None:
    """The first set variable among `name` and `fallbacks`, else `default`."""
    for key in (name, *fallbacks):
        value = os.environ.get(key)
        if value:
            return value
    return default


def number_parser(kind: type[float], minimum: float | None, var: str) -> Callable[[str], float]:
    """An argparse `type` reading an int or float at least `minimum` (None: more than 0);
    argparse runs it on the environment's string default too, so a bad variable is named."""
    wanted = f"at least {minimum:g}" if minimum is not None else "more than 0"

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value < (minimum or 0) or (minimum is None and value == 0):
            noun = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {noun} {wanted}; it comes from the flag or {var}"
            )
        return value

    parse.__name__ = kind.__name__
    return parse


def add_number(
    parser: argparse.ArgumentParser,
    flag: str,
    default: float,
    meaning: str,
    *,
    minimum: float | None = None,
    var: str | None = None,
) -> None:
    """--<flag> with env `var` (default AGENT_<FLAG>): an int or float setting, typed by its
    default, more than 0 unless `minimum` says otherwise."""
    var = var or "AGENT_" + flag.upper().replace("-", "_")
    kind: type[float] = int if isinstance(default, int) else float
    parser.add_argument(
        f"--{flag}",
        type=number_parser(kind, minimum, var),
        default=os.environ.get(var) or default,
        help=f"{meaning} (env {var}, default {default})",
    )


def add_port(parser: argparse.ArgumentParser, name: str, default: int) -> None:
    """--<name>-port with env AGENT_<NAME>_PORT, 0 (any free port) to 65535."""
    var = f"AGENT_{name.upper().replace('-', '_')}_PORT"
    parser.add_argument(
        f"--{name}-port",
        type=_port_parser(var),
        default=os.environ.get(var) or default,
        help=f"port of the {name} (env {var}, default {default})",
    )


def _port_parser(var: str) -> Callable[[str], int]:
    read = number_parser(int, 0, var)

    def parse(text: str) -> int:
        port = int(read(text))
        if port > 65535:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a port (0 to 65535); it comes from the flag or {var}"
            )
        return port

    return parse


CONTEXT_FLAGS: tuple[tuple[str, float, str], ...] = (
    (
        "context-window",
        0,
        "tokens of the model's context window; 0: the proxy route's `context_window`, else "
        "the known window of the model's name, else 8192",
    ),
    ("output-reserve", 0, "tokens of the window kept free for the answer; 0: --max-tokens"),
    ("max-tokens", 4096, "max_tokens of every model request; 0: not sent"),
    ("max-turn-output", 32_768, "tokens the model may write in one turn; 0: no budget"),
    ("turn-deadline", 900.0, "seconds a turn may run before it is ended; 0: no deadline"),
)


def add_context_flags(parser: argparse.ArgumentParser) -> None:
    """The context budget and output limits of every session, each with its AGENT_ variable."""
    for flag, default, meaning in CONTEXT_FLAGS:
        add_number(parser, flag, default, meaning, minimum=0)


def add_host(parser: argparse.ArgumentParser) -> None:
    """--host: the interface every server binds."""
    parser.add_argument(
        "--host",
        default=env("AGENT_HOST", DEFAULT_HOST),
        help="interface to bind (env AGENT_HOST, default %(default)s)",
    )


def add_llm_upstream(
    parser: argparse.ArgumentParser,
    *,
    unset_means: str,
    model_unset_means: str = "the endpoint's first model, or 'demo' for the built-in demo model",
) -> None:
    """--llm-base-url, --llm-api-key and --model: which OpenAI-compatible endpoint to call."""
    parser.add_argument(
        "--llm-base-url",
        default=env("AGENT_LLM_BASE_URL"),
        help=f"OpenAI-compatible base URL, e.g. http://localhost:11434/v1 "
        f"(env AGENT_LLM_BASE_URL; unset: {unset_means})",
    )
    parser.add_argument(
        "--llm-api-key",
        default=env("AGENT_LLM_API_KEY", None, "OPENAI_API_KEY"),
        help="API key for that endpoint (env AGENT_LLM_API_KEY, falling back to OPENAI_API_KEY)",
    )
    parser.add_argument(
        "--model",
        default=env("AGENT_MODEL"),
        help=f"model name to request (env AGENT_MODEL; unset: {model_unset_means})",
    )


def add_replay_source(parser: argparse.ArgumentParser) -> None:
    """--replay DB and --replay-session ID: answer model requests from a recorded session."""
    parser.add_argument(
        "--replay",
        type=Path,
        default=env("AGENT_REPLAY_DB"),
        metavar="DB",
        help="serve the model responses of a recorded session from this transcript database "
        "instead of a model; a request the recording does not have is refused, naming the "
        "difference (env AGENT_REPLAY_DB)",
    )
    parser.add_argument(
        "--replay-session",
        default=env("AGENT_REPLAY_SESSION"),
        metavar="ID",
        help="the recorded session --replay serves (env AGENT_REPLAY_SESSION)",
    )


def add_token(
    parser: argparse.ArgumentParser, *, unset_means: str = "one is generated and printed"
) -> None:
    """--token: the bearer token IDEs present to the gateway."""
    parser.add_argument(
        "--token",
        default=env("AGENT_TOKEN"),
        help=f"bearer token IDEs must present (env AGENT_TOKEN; unset: {unset_means})",
    )


def add_broker(parser: argparse.ArgumentParser) -> None:
    """--broker: the NATS server (with JetStream) that gateways and orchestrators share."""
    parser.add_argument(
        "--broker",
        default=env("AGENT_BROKER"),
        metavar="URL",
        help="a NATS server with JetStream (nats://host:4222): gateways and orchestrators find "
        "each other through it, sessions live in its log (env AGENT_BROKER; default: none, the "
        "gateway links to one orchestrator directly)",
    )


def add_internal_token(parser: argparse.ArgumentParser) -> None:
    """--internal-token: the secret between the gateway and the orchestrator."""
    parser.add_argument(
        "--internal-token",
        default=env("AGENT_INTERNAL_TOKEN"),
        help="shared secret on the gateway-orchestrator link (env AGENT_INTERNAL_TOKEN; "
        "unset: the link is open, so bind the orchestrator to loopback)",
    )


def forwarded(
    declare: Callable[[argparse.ArgumentParser], None], args: argparse.Namespace
) -> list[str]:
    """The flags `declare` adds, with their values in `args`, as a command line: how `up`
    passes the settings it took on to the service that owns them."""
    probe = argparse.ArgumentParser(add_help=False)
    declare(probe)
    out: list[str] = []
    for action in probe._actions:
        flag, value = action.option_strings[-1], getattr(args, action.dest, None)
        if isinstance(value, list):
            out += [part for item in value for part in (flag, str(item))]
        elif isinstance(value, bool):
            out += [flag] if value else []
        elif value is not None:
            out += [flag, str(value)]
    return out
