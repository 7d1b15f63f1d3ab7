"""The concurrency sweep: N sessions streaming at once at a paced rate, for each N, on every route.

Per route and level: memory of each service before and after opening the
sessions (idle) and at its peak while they stream, CPU per token, time to
first token, and the delay of every token emitted while all N sessions
stream at once (the steady state). Session starts are spread over the first
third of a stream, as independent users' would be: starting a request costs
far more than relaying a token, and N requests started in the same instant
would measure that burst, not N streams.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from benchmarks.directive import Directive
from benchmarks.errors import TurnFailed
from benchmarks.meter import CpuWindow, rss_of
from benchmarks.routes import Route
from benchmarks.scenarios import rotated
from benchmarks.turn import BenchSession, Turn

OPENING_IN_PARALLEL = 50
RAMP_SHARE = 1 / 3
RSS_SAMPLE_S = 0.1
KIB = 1024


@dataclass
class LevelRecord:
    """What one route showed with `sessions` sessions streaming at once."""

    sessions: int
    failed: str | None = None
    token_ms: list[float] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list)
    emission_lag_ms: list[float] = field(default_factory=list)
    cpu_us_per_token: dict[str, float] = field(default_factory=dict)
    idle_kib_per_session: dict[str, float] = field(default_factory=dict)
    streaming_kib_per_session: dict[str, float] = field(default_factory=dict)
    tokens_sent: int = 0
    tokens_received: int = 0
    frames: int = 0


async def run_sweep(
    routes: Sequence[Route],
    levels: Sequence[int],
    directive: Directive,
    observed: dict[str, int],
) -> dict[int, dict[str, LevelRecord]]:
    """Every level on every route, the routes' order rotating per level.

    A route that fails a level (a session limit, say) is started fresh and
    tried once more; a second failure is recorded as the level's result.
    """
    results: dict[int, dict[str, LevelRecord]] = {}
    for index, sessions in enumerate(levels):
        results[sessions] = {}
        for route in rotated(routes, index):
            record = await _level(route, sessions, directive, observed)
            if record.failed and await route.restart():
                record = await _level(route, sessions, directive, observed)
            results[sessions][route.name] = record
    return results


async def _level(
    route: Route, sessions: int, directive: Directive, observed: dict[str, int]
) -> LevelRecord:
    record = LevelRecord(sessions)
    services = route.services()
    before = rss_of(services)
    try:
        opened = await open_sessions(route, sessions)
    except TurnFailed as exc:
        record.failed = str(exc)
        return record
    sampler = None
    try:
        idle = rss_of(services)
        peak = dict(idle)
        sampler = asyncio.create_task(_track_peak(services, peak))
        window = CpuWindow({**services, **observed})
        spacing = directive.tokens / directive.rate * RAMP_SHARE / sessions
        async with asyncio.timeout(directive.tokens / directive.rate * 4 + 60):
            turns = await asyncio.gather(
                *(
                    _staggered(session, index * spacing, directive)
                    for index, session in enumerate(opened)
                )
            )
        cpu = window.read()
    finally:
        if sampler is not None:
            sampler.cancel()
        await asyncio.gather(*(session.close() for session in opened), return_exceptions=True)
    tokens = sum(turn.tokens for turn in turns)
    steady_from = max(turn.emitted_ns[0] for turn in turns)
    steady_to = min(turn.emitted_ns[-1] for turn in turns)
    record.token_ms = [
        latency
        for turn in turns
        for latency in turn.token_latencies_between_ms(steady_from, steady_to)
    ]
    if not record.token_ms:
        record.failed = "the sessions never all streamed at once: streams shorter than the ramp"
    record.ttft_ms = [turn.first_token_ms() for turn in turns]
    record.emission_lag_ms = [lag for turn in turns for lag in turn.emission_lag_ms(directive.rate)]
    record.cpu_us_per_token = {name: used / 1000 / max(tokens, 1) for name, used in cpu.items()}
    record.idle_kib_per_session = _per_session(before, idle, sessions)
    record.streaming_kib_per_session = _per_session(before, peak, sessions)
    record.tokens_sent = directive.tokens * sessions
    record.tokens_received = tokens
    record.frames = sum(turn.frames for turn in turns)
    return record


async def open_sessions(route: Route, count: int) -> list[BenchSession]:
    """`count` sessions, a few at a time; all or none (TurnFailed, the others closed)."""
    limit = asyncio.Semaphore(OPENING_IN_PARALLEL)

    async def open_one() -> BenchSession:
        async with limit:
            return await route.open_session()

    results = await asyncio.gather(*(open_one() for _ in range(count)), return_exceptions=True)
    opened = [result for result in results if not isinstance(result, BaseException)]
    failures = [result for result in results if isinstance(result, BaseException)]
    if failures:
        await asyncio.gather(*(session.close() for session in opened), return_exceptions=True)
        raise TurnFailed(
            f"{len(failures)} of {count} sessions could not be opened: {failures[0]!r}"
        )
    return opened


async def _staggered(session: BenchSession, delay_s: float, directive: Directive) -> Turn:
    await asyncio.sleep(delay_s)
    return await session.turn(directive)


async def _track_peak(services: dict[str, int], peak: dict[str, int]) -> None:
    """Keep the highest RSS seen per service until cancelled."""
    with contextlib.suppress(ProcessLookupError, FileNotFoundError):
        while True:
            for name, now in rss_of(services).items():
                peak[name] = max(peak[name], now)
            await asyncio.sleep(RSS_SAMPLE_S)


def _per_session(before: dict[str, int], after: dict[str, int], sessions: int) -> dict[str, float]:
    return {name: (after[name] - before[name]) / KIB / sessions for name in before}
