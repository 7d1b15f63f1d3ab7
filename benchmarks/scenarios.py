"""One-session scenarios, run in interleaved rounds: every round visits every route in turn.

Each measured turn runs on a session opened for it (so every turn is a first
turn, with no history growing from round to round), and the route's order
rotates from round to round, so that drift of the machine falls on all routes alike.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from benchmarks.directive import Directive
from benchmarks.meter import CpuWindow
from benchmarks.routes import Route
from benchmarks.turn import Turn

Measure = Callable[[Turn], dict[str, list[float]]]


@dataclass
class RouteRecord:
    """What one route showed over the rounds of one scenario."""

    figures: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    cpu_us_per_token: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    tokens_sent: int = 0
    tokens_received: int = 0
    frames: int = 0

    def add(self, turn: Turn, tokens_sent: int, cpu_ns: dict[str, int], measure: Measure) -> None:
        """Fold in one turn and the CPU its window took."""
        for name, values in measure(turn).items():
            self.figures[name].extend(values)
        for process, used in cpu_ns.items():
            self.cpu_us_per_token[process].append(used / 1000 / max(turn.tokens, 1))
        self.tokens_sent += tokens_sent
        self.tokens_received += turn.tokens
        self.frames += turn.frames


def rotated(routes: Sequence[Route], shift: int) -> list[Route]:
    """The routes, starting `shift` places further each round."""
    start = shift % len(routes)
    return [*routes[start:], *routes[:start]]


async def one_turn(route: Route, directive: Directive, timeout_s: float) -> Turn:
    """An unmeasured turn on a fresh session: opens connection pools, caches the model name."""
    session = await route.open_session()
    try:
        async with asyncio.timeout(timeout_s):
            return await session.turn(directive)
    finally:
        await session.close()


async def run_rounds(
    routes: Sequence[Route],
    rounds: int,
    directive: Directive,
    measure: Measure,
    observed: dict[str, int],
    timeout_s: float,
) -> dict[str, RouteRecord]:
    """`rounds` turns per route, interleaved; CPU of the route's services and of `observed`."""
    records = {route.name: RouteRecord() for route in routes}
    for index in range(rounds):
        for route in rotated(routes, index):
            session = await route.open_session()
            try:
                window = CpuWindow({**route.services(), **observed})
                async with asyncio.timeout(timeout_s):
                    turn = await session.turn(directive)
                cpu = window.read()
            finally:
                await session.close()
            records[route.name].add(turn, directive.tokens, cpu, measure)
    return records


def latency_figures(turn: Turn) -> dict[str, list[float]]:
    """Time to first token, and each token's delay from emission to receipt."""
    return {"ttft_ms": [turn.first_token_ms()], "token_ms": turn.token_latencies_ms()}


def throughput_figures(turn: Turn) -> dict[str, list[float]]:
    """Tokens per second of the whole turn."""
    return {"tokens_per_s": [turn.tokens_per_s()]}


def tool_figures(turn: Turn) -> dict[str, list[float]]:
    """Asking to tool call, and tool call (answered at once) to the first token after it."""
    return {
        "tool_call_ms": [turn.tool_call_ms()],
        "tool_round_trip_ms": [turn.tool_round_trip_ms()],
    }
