"""Run gateway, orchestrator and llm-proxy together on this machine, each as its own process.

The llm-proxy requires a key, AGENT_PROXY_KEY when set (to call the proxy yourself),
else one generated here; the orchestrator gets it in its environment, never printed.

Without --llm-base-url the proxy serves the built-in offline demo model. With
--replay DB --replay-session ID it serves that recorded session's model
responses instead, for a live re-run with `agent-service ide --replay ID`.
Ctrl-C, SIGTERM or SIGHUP (a closed terminal) stops all three cleanly.
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from types import FrameType

import openai

import agent_service.gateway_command as gateway_cli
import agent_service.orchestrator_command as orchestrator_cli
import agent_service.proxy_command as proxy_cli
from agent_service.combined import add_in_process_flag, run_combined
from agent_service.options import (
    DEFAULT_GATEWAY_PORT,
    DEFAULT_ORCHESTRATOR_PORT,
    DEFAULT_PROXY_PORT,
    add_host,
    add_llm_upstream,
    add_port,
    add_replay_source,
    add_token,
    env,
    forwarded,
)
from agent_service.stack import ServiceStack, StackConfig, StackError
from agent_service.transcript_flags import add_recording_flags, open_recorder
from transcripts import TranscriptError

# The services' own settings that `up` takes too, and passes on to the service that owns them.
FORWARDED: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "orchestrator": orchestrator_cli.add_limits,
    "gateway": gateway_cli.add_limits,
    "llm-proxy": proxy_cli.add_upstream_policy,
}


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of `agent-service up`."""
    add_host(parser)
    add_token(parser)
    add_llm_upstream(parser, unset_means="the built-in offline demo model")
    add_port(parser, "gateway", DEFAULT_GATEWAY_PORT)
    add_port(parser, "orchestrator", DEFAULT_ORCHESTRATOR_PORT)
    add_port(parser, "proxy", DEFAULT_PROXY_PORT)
    add_in_process_flag(parser)
    add_recording_flags(parser)
    add_replay_source(parser)
    parser.add_argument(
        "--proxy-key",
        default=env("AGENT_PROXY_KEY"),
        metavar="KEY",
        help="the key the llm-proxy requires, to call it yourself too "
        "(env AGENT_PROXY_KEY; unset: one is generated and handed to the orchestrator only)",
    )
    for declare in FORWARDED.values():
        declare(parser)


def stack_config(args: argparse.Namespace) -> StackConfig:
    """The stack the flags describe; secrets generated where unset, the upstream's first
    model when it is given without --model."""
    model = args.model
    if args.replay and args.llm_base_url:
        raise StackError("--replay serves the recorded session: drop --llm-base-url")
    if model and model != "demo" and not (args.llm_base_url or args.replay or args.routes):
        raise StackError(
            f"--model {model} needs --llm-base-url (without one the built-in demo model answers)"
        )
    if args.llm_base_url and not model and not args.routes:
        model = first_model(args.llm_base_url, args.llm_api_key)
    return StackConfig(
        host=args.host,
        gateway_port=args.gateway_port,
        orchestrator_port=args.orchestrator_port,
        proxy_port=args.proxy_port,
        token=args.token or secrets.token_hex(24),
        internal_token=secrets.token_hex(24),
        proxy_key=args.proxy_key or secrets.token_hex(24),
        llm_base_url=args.llm_base_url,
        llm_api_key=args.llm_api_key,
        model=model,
        extra_args={
            "orchestrator": [*_recording_args(args), *forwarded(FORWARDED["orchestrator"], args)],
            "gateway": forwarded(FORWARDED["gateway"], args),
            "llm-proxy": [*_replay_args(args), *forwarded(FORWARDED["llm-proxy"], args)],
        },
    )


def first_model(base_url: str, api_key: str | None) -> str:
    """The first model an OpenAI-compatible endpoint lists; raises StackError."""
    client = openai.OpenAI(base_url=base_url, api_key=api_key or "not-needed", max_retries=0)
    try:
        models = [model.id for model in client.models.list()]
    except openai.OpenAIError as exc:
        raise StackError(f"cannot list the models of {base_url} ({exc}); pass --model") from None
    if not models:
        raise StackError(f"{base_url} lists no models; pass --model")
    return models[0]


def upstream_problems(config: StackConfig) -> list[str]:
    """What the proxy's readiness probe says is wrong with the LLM endpoint (empty: nothing)."""
    request = urllib.request.Request(f"http://{config.host}:{config.proxy_port}/readyz")
    if config.proxy_key:
        request.add_header("Authorization", f"Bearer {config.proxy_key}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as unready:
        body = json.loads(unready.read())
    except OSError as exc:
        return [f"cannot ask the llm-proxy whether its upstream is ready ({exc})"]
    return [str(problem) for problem in body.get("problems", [])]


def _recording_args(args: argparse.Namespace) -> list[str]:
    """The recording flags, passed on to the orchestrator process."""
    if not args.transcripts:
        return []
    out = ["--transcripts", args.transcripts]
    for pattern in args.transcripts_redact:
        if pattern:
            out += ["--transcripts-redact", pattern]
    return out


def _replay_args(args: argparse.Namespace) -> list[str]:
    """The replay flags, passed on to the llm-proxy process."""
    if not args.replay:
        return []
    return ["--replay", str(args.replay), "--replay-session", args.replay_session or ""]


def run(args: argparse.Namespace) -> int:
    """Start the stack, print how to connect, and wait for a signal or a crash."""
    try:
        config = stack_config(args)
    except StackError as exc:
        print(f"agent-service up: {exc}", file=sys.stderr)
        return 1
    stack = ServiceStack(config)
    if args.in_process:
        try:
            recorder = open_recorder(args)
        except TranscriptError as exc:
            print(f"agent-service up: {exc.message}", file=sys.stderr)
            return 2
        _announce(config, args)
        return run_combined(config, args, stack, recorder)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGHUP, request_stop)
    try:
        stack.start()
    except StackError as exc:
        print(f"agent-service up: {exc}", file=sys.stderr)
        return 1
    _announce(config, args)
    for problem in upstream_problems(config):
        print(f"agent-service up: warning: {problem}", file=sys.stderr, flush=True)
    return stack.run_until_stopped(stop, "up")


def _announce(config: StackConfig, args: argparse.Namespace) -> None:
    model = config.model or ("demo (offline)" if not config.llm_base_url else "endpoint default")
    ide = '--workspace DIR "Add logging to src/auth.js"'
    if args.replay:
        model = f"replay of session {args.replay_session} from {args.replay}"
        ide = f"--replay {args.replay_session} --db {args.replay}"
    print(
        f"agent-service is up: gateway {config.gateway_url}  model {model}\n"
        f"token: {'(from --token/AGENT_TOKEN)' if args.token else config.token}\n"
        f"connect an IDE:  agent-service ide {ide} --url {config.gateway_url} --token <token>\n"
        "Ctrl-C stops everything.",
        file=sys.stderr,
        flush=True,
    )
