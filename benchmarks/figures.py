"""Records turned into figures: p50/p99 per route, what each adds to the direct path, the ratio.

Also the issue's targets for the three-process pipeline, each with its
measured figure and whether it is met.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from benchmarks.meter import CLIENT
from benchmarks.routes import DIRECT, PIPELINE, PROXY
from benchmarks.scenarios import RouteRecord
from benchmarks.stats import spread
from benchmarks.sweep import LevelRecord

UPSTREAM = "bench upstream"
REFERENCE_PROCESSES = (CLIENT, UPSTREAM)
Figures = dict[str, Any]


def compare(values: Mapping[str, list[float]], *, added: bool = True) -> dict[str, Any]:
    """Each route's p50/p99, its ratio to the direct route's, and (`added`) the difference."""
    floor = spread(values[DIRECT])
    compared = {}
    for route, route_values in values.items():
        figure: dict[str, Any] = spread(route_values)
        for q in ("p50", "p99"):
            if added:
                figure[f"added_{q}"] = figure[q] - floor[q]
            figure[f"ratio_{q}"] = figure[q] / floor[q] if floor[q] else None
        compared[route] = figure
    return compared


def cpu_figures(records: Mapping[str, RouteRecord]) -> dict[str, Any]:
    """CPU µs per token of each process, the services' sum, and all processes' against direct."""
    whole: dict[str, list[float]] = {}
    table: dict[str, Any] = {}
    for route, record in records.items():
        per_process = record.cpu_us_per_token
        windows = len(next(iter(per_process.values())))
        services = [name for name in per_process if name not in REFERENCE_PROCESSES]
        table[route] = {name: spread(values) for name, values in per_process.items()}
        if services:
            table[route]["services"] = spread(
                [sum(per_process[name][index] for name in services) for index in range(windows)]
            )
        whole[route] = [
            sum(values[index] for values in per_process.values()) for index in range(windows)
        ]
    for route, figure in compare(whole, added=False).items():
        table[route]["all processes"] = figure
    return table


def frame_counts(records: Mapping[str, RouteRecord | LevelRecord]) -> dict[str, Any]:
    """Tokens sent, received, and the frames they came in: merged text shows as frames < tokens."""
    return {
        route: {
            "tokens_sent": record.tokens_sent,
            "tokens_received": record.tokens_received,
            "frames": record.frames,
            "frames_per_token": record.frames / record.tokens_received
            if record.tokens_received
            else None,
        }
        for route, record in records.items()
    }


def undelivered(figures: Figures) -> list[str]:
    """Every scenario and route whose client received another number of tokens than the
    upstream sent, as a sentence each; a sweep level that failed is reported as failed instead.

    Text merged on the way (fewer frames than tokens) is fine: every token still carries its
    stamp. A token that never arrived means a figure of that route measured a broken stream.
    """
    counted = [
        (scenario, route, counts)
        for scenario, routes in figures["frames"].items()
        for route, counts in routes.items()
    ]
    counted += [
        (f"{sessions} sessions", route, counts)
        for sessions, routes in figures["sweep"].items()
        for route, counts in routes.items()
        if "failed" not in counts
    ]
    return [
        f"{route}, {scenario}: received {counts['tokens_received']:,} of "
        f"{counts['tokens_sent']:,} tokens sent"
        for scenario, route, counts in counted
        if counts["tokens_received"] != counts["tokens_sent"]
    ]


def sweep_figures(levels: Mapping[int, Mapping[str, LevelRecord]]) -> dict[str, Any]:
    """Per level and route: token delay against direct's, CPU per token, memory per session."""
    figures: dict[str, Any] = {}
    for sessions, records in levels.items():
        measured = {route: record for route, record in records.items() if not record.failed}
        delays = compare({route: record.token_ms for route, record in measured.items()})
        counts = frame_counts(measured)
        level: dict[str, Any] = {}
        for route, record in records.items():
            if record.failed:
                level[route] = {"failed": record.failed}
                continue
            services = {
                name: value
                for name, value in record.cpu_us_per_token.items()
                if name not in REFERENCE_PROCESSES
            }
            level[route] = {
                "token_ms": delays[route],
                "ttft_ms": spread(record.ttft_ms),
                "emission_lag_ms": spread(record.emission_lag_ms),
                "cpu_us_per_token": {**record.cpu_us_per_token, "services": sum(services.values())},
                "idle_kib_per_session": _with_total(record.idle_kib_per_session),
                "streaming_kib_per_session": _with_total(record.streaming_kib_per_session),
                **counts[route],
            }
        figures[str(sessions)] = level
    return figures


def _with_total(per_service: dict[str, float]) -> dict[str, float]:
    return {**per_service, "total": sum(per_service.values())} if per_service else {}


@dataclass(frozen=True)
class Target:
    """A goal for the three-process pipeline and where its figure is found.

    `figure` gives the value, where it was measured, and with how many sessions;
    a goal stated for more `sessions` than were run is reported as partial.
    """

    name: str
    goal: str
    limit: float
    at_most: bool
    unit: str
    figure: Callable[[Figures], tuple[float, str, int]]
    sessions: int = 1

    def check(self, figures: Figures) -> dict[str, Any]:
        """The measured figure and whether it meets the goal."""
        try:
            value, where, sessions = self.figure(figures)
        except (KeyError, ValueError):
            return {"name": self.name, "goal": self.goal, "measured": None, "met": False}
        met = value <= self.limit if self.at_most else value >= self.limit
        return {
            "name": self.name,
            "goal": self.goal,
            "measured": value,
            "unit": self.unit,
            "where": where,
            "met": met,
            "partial": sessions < self.sessions,
        }


def _largest_level(figures: Figures) -> tuple[int, dict[str, Any]]:
    """The largest sweep level the pipeline ran, and its figures."""
    runs = [
        (int(sessions), level[PIPELINE])
        for sessions, level in figures["sweep"].items()
        if "failed" not in level.get(PIPELINE, {"failed": True})
    ]
    return max(runs, key=lambda run: run[0])


def _one_session(value: float, where: str) -> tuple[float, str, int]:
    return value, where, 1


def _at_largest_level(figures: Figures, *keys: str) -> tuple[float, str, int]:
    sessions, level = _largest_level(figures)
    value: Any = level
    for key in keys:
        value = value[key]
    return float(value), f"{sessions} sessions", sessions


TARGETS = (
    Target(
        "added time to first token, p50",
        "<= 2 ms",
        2.0,
        True,
        "ms",
        lambda f: _one_session(f["ttft_ms"][PIPELINE]["added_p50"], "one session, paced"),
    ),
    Target(
        "added time to first token, p99",
        "<= 4 ms",
        4.0,
        True,
        "ms",
        lambda f: _one_session(f["ttft_ms"][PIPELINE]["added_p99"], "one session, paced"),
    ),
    Target(
        "llm-proxy alone: added time to first token, p50",
        "<= 0.75 ms",
        0.75,
        True,
        "ms",
        lambda f: _one_session(f["ttft_ms"][PROXY]["added_p50"], "proxy route, paced"),
    ),
    Target(
        "added per-token latency, p50",
        "<= 0.6 ms",
        0.6,
        True,
        "ms",
        lambda f: _one_session(f["token_ms"][PIPELINE]["added_p50"], "one session, paced"),
    ),
    Target(
        "tokens/s, one session at full upstream speed",
        ">= 10000",
        10_000,
        False,
        "tokens/s",
        lambda f: _one_session(f["tokens_per_s"][PIPELINE]["p50"], "p50 over rounds"),
    ),
    Target(
        "CPU per token, summed over the three services",
        "<= 100 us",
        100.0,
        True,
        "us",
        lambda f: _one_session(
            f["cpu_us_per_token"]["full_speed"][PIPELINE]["services"]["p50"],
            "one session, full speed",
        ),
    ),
    Target(
        "CPU per token, summed over the three services",
        "<= 100 us",
        100.0,
        True,
        "us",
        lambda f: _one_session(
            f["cpu_us_per_token"]["paced"][PIPELINE]["services"]["p50"], "one session, paced"
        ),
    ),
    Target(
        "added p99 with 500 concurrent streaming sessions",
        "<= 20 ms",
        20.0,
        True,
        "ms",
        lambda f: _at_largest_level(f, "token_ms", "added_p99"),
        sessions=500,
    ),
    Target(
        "CPU per token with 500 concurrent streaming sessions, the three services",
        "<= 100 us",
        100.0,
        True,
        "us",
        lambda f: _at_largest_level(f, "cpu_us_per_token", "services"),
        sessions=500,
    ),
    Target(
        "RSS per idle session, summed over the services",
        "<= 64 KiB",
        64.0,
        True,
        "KiB",
        lambda f: _at_largest_level(f, "idle_kib_per_session", "total"),
    ),
)


def check_targets(figures: Figures) -> list[dict[str, Any]]:
    """Every target against the figures."""
    return [target.check(figures) for target in TARGETS]


def summarize(
    latency: Mapping[str, RouteRecord],
    tools: Mapping[str, RouteRecord],
    throughput: Mapping[str, RouteRecord],
    sweep: Mapping[int, Mapping[str, LevelRecord]],
) -> Figures:
    """Every figure of a run."""

    def values(records: Mapping[str, RouteRecord], name: str) -> dict[str, list[float]]:
        return {route: record.figures[name] for route, record in records.items()}

    return {
        "ttft_ms": compare(values(latency, "ttft_ms")),
        "token_ms": compare(values(latency, "token_ms")),
        "tokens_per_s": compare(values(throughput, "tokens_per_s"), added=False),
        "tool_call_ms": compare(values(tools, "tool_call_ms")),
        "tool_round_trip_ms": compare(values(tools, "tool_round_trip_ms")),
        "cpu_us_per_token": {"paced": cpu_figures(latency), "full_speed": cpu_figures(throughput)},
        "frames": {
            "paced": frame_counts(latency),
            "tool_call": frame_counts(tools),
            "full_speed": frame_counts(throughput),
        },
        "sweep": sweep_figures(sweep),
    }
