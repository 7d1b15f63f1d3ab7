"""The figures as plain-text tables for the terminal."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

LATENCY_ROWS = (
    ("ttft_ms", "time to first token (ms)"),
    ("token_ms", "per-token latency, emission to receipt (ms)"),
    ("tool_call_ms", "user message to tool call (ms)"),
    ("tool_round_trip_ms", "tool call answered to next token (ms)"),
)


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns padded to their widest cell, the first left-aligned, the rest right-aligned."""
    lines = [list(header), *(list(row) for row in rows)]
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(widths[column]) if column == 0 else cell.rjust(widths[column])
            for column, cell in enumerate(line)
        ).rstrip()
        for line in lines
    )


def number(value: float | None, digits: int = 3) -> str:
    """A figure for a table; '-' when there is none."""
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return (
        f"{value:.{digits}g}" if abs(value) < 1 else f"{value:.{digits}f}".rstrip("0").rstrip(".")
    )


def render(results: dict[str, Any]) -> str:
    """Every figure and target of a run, as text."""
    figures = results["figures"]
    sizes = results["sizes"]
    machine = results["machine"]
    parts = [
        f"agent-service bench ({machine['cpus']} CPUs, {machine['cpu_model']}, "
        f"Python {machine['python']})",
        f"paced: {sizes['latency_tokens']} tokens at {sizes['latency_rate']:g}/s x "
        f"{sizes['rounds']} rounds; full speed: {sizes['throughput_tokens']} tokens x "
        f"{sizes['throughput_rounds']} rounds; tool calls: {sizes['rounds']} rounds",
        "",
        _latency_table(figures),
        "",
        _cpu_table("CPU us/token, one session paced", figures["cpu_us_per_token"]["paced"]),
        "",
        _cpu_table(
            "CPU us/token, one session full speed", figures["cpu_us_per_token"]["full_speed"]
        ),
        "",
        _frames_table(figures["frames"]),
        "",
        f"concurrency sweep: sessions at {sizes['sweep_rate']:g} tokens/s, "
        f"{sizes['sweep_tokens']} tokens each; token delays (ms) while all stream at once; "
        "late: upstream emission behind its pace (ms); KiB per session summed over services; "
        "tokens received/sent count the stamps, frames what they came in (fewer frames than "
        "tokens: text merged on the way, nothing lost)",
        _sweep_table(figures["sweep"]),
        "",
        _targets_table(results["targets"]),
    ]
    return "\n".join(parts)


def _latency_table(figures: dict[str, Any]) -> str:
    rows = []
    for key, label in LATENCY_ROWS:
        for route, figure in figures[key].items():
            rows.append(
                [
                    label if route == "direct" else "",
                    route,
                    number(figure["p50"]),
                    number(figure["p99"]),
                    number(figure["added_p50"]),
                    number(figure["added_p99"]),
                    number(figure["ratio_p50"]),
                ]
            )
    for route, figure in figures["tokens_per_s"].items():
        rows.append(
            [
                "tokens/s, one session, full speed" if route == "direct" else "",
                route,
                number(figure["p50"]),
                number(figure["p99"]),
                "",
                "",
                number(figure["ratio_p50"]),
            ]
        )
    header = ["figure", "route", "p50", "p99", "added p50", "added p99", "x direct p50"]
    return table(header, rows)


def _cpu_table(title: str, cpu: dict[str, Any]) -> str:
    rows = []
    for route, processes in cpu.items():
        for name, figure in processes.items():
            rows.append(
                [
                    route if name == next(iter(processes)) else "",
                    name,
                    number(figure["p50"]),
                    number(figure["p99"]),
                    number(figure.get("ratio_p50")),
                ]
            )
    return table([title, "process", "p50", "p99", "x direct p50"], rows)


def _frames_table(frames: dict[str, Any]) -> str:
    rows = []
    for scenario, routes in frames.items():
        for route, counts in routes.items():
            rows.append(
                [
                    scenario if route == next(iter(routes)) else "",
                    route,
                    str(counts["tokens_sent"]),
                    str(counts["tokens_received"]),
                    str(counts["frames"]),
                    number(counts["frames_per_token"]),
                ]
            )
    header = [
        "tokens vs frames",
        "route",
        "tokens sent",
        "tokens received",
        "frames",
        "frames/token",
    ]
    return table(header, rows)


def _sweep_table(sweep: dict[str, Any]) -> str:
    rows = []
    failures = []
    for sessions, routes in sweep.items():
        for route, level in routes.items():
            first = sessions if route == next(iter(routes)) else ""
            if "failed" in level:
                rows.append([first, route, "failed", *[""] * 10])
                failures.append(f"{route} failed at {sessions} sessions: {level['failed']}")
                continue
            delays = level["token_ms"]
            rows.append(
                [
                    first,
                    route,
                    number(delays["p50"]),
                    number(delays["p99"]),
                    number(delays["added_p99"]),
                    number(delays["ratio_p99"]),
                    number(level["ttft_ms"]["p99"]),
                    number(level["emission_lag_ms"]["p99"]),
                    number(level["cpu_us_per_token"]["services"]),
                    number(level["idle_kib_per_session"].get("total")),
                    number(level["streaming_kib_per_session"].get("total")),
                    f"{level['tokens_received']}/{level['tokens_sent']}",
                    str(level["frames"]),
                ]
            )
    header = [
        "sessions",
        "route",
        "p50 ms",
        "p99 ms",
        "added p99",
        "x direct p99",
        "TTFT p99",
        "late p99",
        "services CPU us/tok",
        "idle KiB/sess",
        "streaming KiB/sess",
        "tokens received/sent",
        "frames",
    ]
    return "\n".join([table(header, rows), *failures])


def _targets_table(targets: list[dict[str, Any]]) -> str:
    rows = [
        [
            target["name"],
            target["goal"],
            "-" if target["measured"] is None else f"{number(target['measured'])} {target['unit']}",
            target.get("where", ""),
            ("met" if target["met"] else "NOT met")
            + (" (fewer sessions than the goal)" if target.get("partial") else ""),
        ]
        for target in targets
    ]
    return table(["target (pipeline, three processes)", "goal", "measured", "where", ""], rows)
