"""One run of the bench: start the processes under test, measure every scenario, stop them."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.directive import Directive
from benchmarks.figures import UPSTREAM, summarize
from benchmarks.processes import ProductStack, UpstreamProcess
from benchmarks.routes import (
    BROKER,
    DIRECT,
    IN_PROCESS,
    PIPELINE,
    PROXY,
    GatewayRoute,
    OpenAiRoute,
    Route,
)
from benchmarks.scenarios import (
    latency_figures,
    one_turn,
    run_rounds,
    throughput_figures,
    tool_figures,
)
from benchmarks.sweep import run_sweep


@dataclass(frozen=True)
class Sizes:
    """How much a run measures."""

    rounds: int
    latency_tokens: int
    latency_rate: float
    tool_tokens: int
    throughput_tokens: int
    throughput_rounds: int
    sweep_levels: tuple[int, ...]
    sweep_tokens: int
    sweep_rate: float
    turn_timeout_s: float


QUICK = Sizes(
    rounds=5,
    latency_tokens=30,
    latency_rate=200,
    tool_tokens=5,
    throughput_tokens=5_000,
    throughput_rounds=2,
    sweep_levels=(1, 10, 50),
    sweep_tokens=30,
    sweep_rate=20,
    turn_timeout_s=60,
)
FULL = Sizes(
    rounds=20,
    latency_tokens=100,
    latency_rate=200,
    tool_tokens=5,
    throughput_tokens=20_000,
    throughput_rounds=5,
    sweep_levels=(1, 10, 100, 500),
    sweep_tokens=100,
    sweep_rate=20,
    turn_timeout_s=120,
)


@dataclass(frozen=True)
class UnderTest:
    """The routes to compare and the processes observed beside their services."""

    routes: tuple[Route, ...]
    observed: dict[str, int]
    broker: ProductStack | None = None


@contextlib.contextmanager
def processes_under_test(log_dir: Path, with_broker: bool = False) -> Iterator[UnderTest]:
    """The bench upstream and the product stacks (the broker's too, `with_broker`), running
    for the block; stopped after."""
    upstream = UpstreamProcess(log_dir)
    pipeline = ProductStack(upstream.base_url, in_process=False, log_dir=log_dir)
    in_process = ProductStack(upstream.base_url, in_process=True, log_dir=log_dir)
    broker = (
        ProductStack(upstream.base_url, in_process=False, log_dir=log_dir, broker=True)
        if with_broker
        else None
    )
    started: list[UpstreamProcess | ProductStack] = []
    try:
        to_start: list[UpstreamProcess | ProductStack] = [upstream, pipeline, in_process]
        for process in to_start + ([broker] if broker else []):
            process.start()
            started.append(process)
        for process in started:
            process.wait_ready()
        yield UnderTest(
            routes=(
                OpenAiRoute(DIRECT, upstream.base_url),
                OpenAiRoute(PROXY, pipeline.proxy_url, pipeline),
                GatewayRoute(PIPELINE, pipeline),
                GatewayRoute(IN_PROCESS, in_process),
                *([GatewayRoute(BROKER, broker)] if broker else []),
            ),
            observed={UPSTREAM: upstream.pid},
            broker=broker,
        )
    finally:
        for process in reversed(started):
            code = process.stop()
            if code != 0:
                print(f"agent-service bench: a process under test exited {code}", file=sys.stderr)


async def measure(under_test: UnderTest, sizes: Sizes) -> dict[str, Any]:
    """Every scenario, in order; the figures."""
    routes, observed, timeout_s = under_test.routes, under_test.observed, sizes.turn_timeout_s
    for route in routes:
        await one_turn(route, Directive(sizes.tool_tokens, tool_call=True), timeout_s)
    latency = await run_rounds(
        routes,
        sizes.rounds,
        Directive(sizes.latency_tokens, sizes.latency_rate),
        latency_figures,
        observed,
        timeout_s,
    )
    tools = await run_rounds(
        routes,
        sizes.rounds,
        Directive(sizes.tool_tokens, tool_call=True),
        tool_figures,
        observed,
        timeout_s,
    )
    throughput = await run_rounds(
        routes,
        sizes.throughput_rounds,
        Directive(sizes.throughput_tokens),
        throughput_figures,
        observed,
        timeout_s,
    )
    sweep = await run_sweep(
        routes, sizes.sweep_levels, Directive(sizes.sweep_tokens, sizes.sweep_rate), observed
    )
    figures = summarize(latency, tools, throughput, sweep)
    if under_test.broker is not None:
        figures["broker_wire"] = await broker_wire(under_test.broker, sizes)
    return figures


async def broker_wire(stack: ProductStack, sizes: Sizes) -> dict[str, Any]:
    """NATS messages and bytes (into and out of the server, both counted) per streamed token,
    over one paced and one full-speed turn on the broker route alone."""
    route = GatewayRoute(BROKER, stack)
    wire: dict[str, Any] = {}
    for name, directive in (
        ("paced", Directive(sizes.latency_tokens, sizes.latency_rate)),
        ("full_speed", Directive(sizes.throughput_tokens)),
    ):
        before = stack.broker_counters()
        await one_turn(route, directive, sizes.turn_timeout_s)
        after = stack.broker_counters()
        delta = {key: after[key] - before[key] for key in after}
        wire[name] = {
            "tokens": directive.tokens,
            "msgs_per_token": (delta["in_msgs"] + delta["out_msgs"]) / directive.tokens,
            "bytes_per_token": (delta["in_bytes"] + delta["out_bytes"]) / directive.tokens,
        }
    return wire
