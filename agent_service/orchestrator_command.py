"""Run the orchestrator: the sessions' state machines, behind the gateway's internal WebSocket."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable

from agent_service.options import (
    DEFAULT_ORCHESTRATOR_PORT,
    DEFAULT_PROXY_PORT,
    add_broker,
    add_context_flags,
    add_host,
    add_internal_token,
    add_llm_upstream,
    add_number,
    add_port,
)
from agent_service.transcript_flags import add_recording_flags, open_recorder
from orchestrator import (
    CoreConfig,
    LlmClient,
    LlmSettings,
    OrchestratorServer,
    Recorder,
    ServerSettings,
    SessionLimits,
    SessionRegistry,
    flushed_in_background,
    lookup_context_window,
)
from service_logging import configure_logging
from transcripts import TranscriptError, sessions_to_restore


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of `agent-service orchestrator`."""
    add_host(parser)
    add_port(parser, "orchestrator", DEFAULT_ORCHESTRATOR_PORT)
    add_llm_upstream(
        parser, unset_means=f"the local llm-proxy, http://127.0.0.1:{DEFAULT_PROXY_PORT}/v1"
    )
    add_internal_token(parser)
    add_recording_flags(parser)
    add_broker_flags(parser)
    add_limits(parser)


def add_broker_flags(parser: argparse.ArgumentParser) -> None:
    """The broker and this node's lease; `agent-service cluster` passes them on."""
    add_broker(parser)
    add_number(
        parser,
        "lease-ttl",
        3.0,
        "with --broker: seconds a silent orchestrator keeps its sessions before another takes "
        "them over",
    )
    add_number(
        parser,
        "log-max-age",
        86_400.0,
        "with --broker: seconds the session log keeps a record (sessions older cannot be "
        "rebuilt elsewhere)",
    )


def add_limits(parser: argparse.ArgumentParser) -> None:
    """The orchestrator's limits and budgets; `agent-service up` takes and passes them on too."""
    add_number(parser, "max-steps", 25, "model calls allowed per turn")
    add_number(parser, "tool-timeout", 120.0, "seconds the IDE has to answer a tool call")
    add_number(parser, "grace-period", 600.0, "seconds a session outlives its IDE connection")
    add_number(
        parser,
        "max-tool-output",
        64_000,
        "characters of a tool result the model sees; the rest is cut with a visible marker",
    )
    add_number(parser, "max-user-message", 256_000, "characters of a user message")
    add_number(parser, "max-sessions", 10_000, "live sessions this orchestrator holds")
    add_number(parser, "max-sessions-per-token", 100, "live sessions one IDE token may hold")
    add_number(
        parser,
        "max-resume-chars",
        16 * 1024 * 1024,
        "characters of events a session keeps for resume; a resume from before them gets "
        "resume_gap",
    )
    add_number(
        parser, "drain-timeout", 30.0, "on SIGTERM, seconds running turns get to finish", minimum=0
    )
    add_number(parser, "llm-read-timeout", 300.0, "seconds the model may stay silent mid-stream")
    add_context_flags(parser)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; exit 2 when the transcript file cannot be used."""
    configure_logging("orchestrator")
    if args.broker:
        if args.transcripts:
            print(
                "agent-service orchestrator: --transcripts is the single-machine store; with "
                "--broker the sessions are kept in the broker's log",
                file=sys.stderr,
            )
            return 2
        # imported here: an orchestrator without a broker never loads the NATS client
        from orchestrator import BrokerUnavailable

        try:
            asyncio.run(_serve_on_broker(args))
        except BrokerUnavailable as exc:
            print(f"agent-service orchestrator: {exc}", file=sys.stderr)
            return 2
        return 0
    try:
        recorder = flushed_in_background(open_recorder(args))
    except TranscriptError as exc:
        print(f"agent-service orchestrator: {exc.message}", file=sys.stderr)
        return 2
    asyncio.run(_serve(args, recorder))
    return 0


def build_registry(
    args: argparse.Namespace,
    recorder: Recorder,
    settings: LlmSettings | None = None,
    on_freed: Callable[[str], None] | None = None,
) -> SessionRegistry:
    """The session registry the limits in `args` describe (see `add_limits`), calling the model
    at `settings` (without them, at the endpoint the --llm-* flags name); `on_freed` hears of
    each session the registry lets go."""
    settings = settings or LlmSettings(
        base_url=args.llm_base_url or f"http://127.0.0.1:{DEFAULT_PROXY_PORT}/v1",
        api_key=args.llm_api_key,
        model=args.model,
        read_timeout_s=args.llm_read_timeout,
    )
    llm = LlmClient(settings)
    config = CoreConfig(
        max_steps=args.max_steps,
        tool_timeout_s=args.tool_timeout,
        max_tool_output_chars=args.max_tool_output,
        max_user_message_chars=args.max_user_message,
        context_window=args.context_window or lookup_context_window(settings),
        output_reserve=args.output_reserve,
        max_tokens=args.max_tokens,
        max_turn_output_tokens=args.max_turn_output,
        turn_deadline_s=args.turn_deadline,
    )
    limits = SessionLimits(
        grace_period_s=args.grace_period,
        max_sessions=args.max_sessions,
        max_sessions_per_principal=args.max_sessions_per_token,
        history_chars=args.max_resume_chars,
    )
    return SessionRegistry(config, llm, recorder, limits, on_freed)


async def _serve(args: argparse.Namespace, recorder: Recorder) -> None:
    registry = build_registry(args, recorder)
    if args.transcripts:
        not_before = time.time() - args.grace_period
        for recorded in sessions_to_restore(args.transcripts, not_before):
            registry.restore(
                recorded.session_id,
                recorded.config,
                recorded.owner,
                recorded.inputs,
                recorded.reserved_seq,
            )
    try:
        await _server(args, registry).serve_until_signalled()
    finally:
        recorder.close()


def _server(args: argparse.Namespace, registry: SessionRegistry) -> OrchestratorServer:
    """The internal WebSocket server (the direct link, and /healthz)."""
    return OrchestratorServer(
        registry,
        ServerSettings(
            host=args.host,
            port=args.orchestrator_port,
            internal_token=args.internal_token,
            drain_timeout_s=args.drain_timeout,
        ),
    )


async def _serve_on_broker(args: argparse.Namespace) -> None:
    """One node of a cluster: sessions come over NATS and live in the broker's log."""
    from orchestrator import BrokerNode, BrokerSettings

    node = await BrokerNode.connect(BrokerSettings(args.broker, args.lease_ttl, args.log_max_age))
    registry = build_registry(args, node.session_log, on_freed=node.session_log.forget)
    await node.serve(registry)
    try:
        await _server(args, registry).serve_until_signalled()
    finally:
        await node.stop(args.drain_timeout)
