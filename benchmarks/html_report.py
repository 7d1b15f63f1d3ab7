"""The figures of a run as one self-contained HTML page of charts, next to its JSON.

Built from the results JSON alone (`agent-service bench --from FILE` redraws
an earlier run): latency distribution per route, throughput, the concurrency
sweep, the targets, and every table as text.
"""

from __future__ import annotations

from typing import Any

from benchmarks.charts import CSS, Series, bar_chart, distribution_chart, line_chart, route_legend
from benchmarks.report import LATENCY_ROWS, number, render
from benchmarks.routes import DIRECT
from htmlpage import esc, page

SWEEP_LINES = (
    (("token_ms", "p50"), "token delay p50, all sessions streaming", "ms", True),
    (("token_ms", "p99"), "token delay p99, all sessions streaming", "ms", True),
    (("ttft_ms", "p99"), "time to first token p99", "ms", True),
    (("cpu_us_per_token", "services"), "CPU per token, services summed", "us", False),
    (("idle_kib_per_session", "total"), "RSS per idle session, services summed", "KiB", False),
)
"""(figure, key), title, unit, log scale; figures of the services leave out the direct route."""

PAGE_CSS = (
    CSS
    + """
table.targets td.met { color: var(--good); font-weight: 600; }
table.targets td.missed { color: var(--bad); font-weight: 600; }
details pre { font-size: 11.5px; }
"""
)


def _targets(targets: list[dict[str, Any]]) -> str:
    rows = []
    for target in targets:
        measured = (
            "-" if target["measured"] is None else f"{number(target['measured'])} {target['unit']}"
        )
        status = "met" if target["met"] else "not met"
        if target.get("partial"):
            status += " (fewer sessions than the goal)"
        rows.append(
            f"<tr><td>{esc(target['name'])}</td><td>{esc(target['goal'])}</td>"
            f'<td class="num">{esc(measured)}</td><td>{esc(target.get("where", ""))}</td>'
            f'<td class="{"met" if target["met"] else "missed"}">{esc(status)}</td></tr>'
        )
    head = (
        "<tr><th>target (pipeline)</th><th>goal</th><th>measured</th><th>where</th><th></th></tr>"
    )
    return f'<table class="targets">{head}{"".join(rows)}</table>'


def _level_value(level: dict[str, Any], keys: tuple[str, str]) -> float | None:
    if "failed" in level:
        return None
    value = level.get(keys[0], {}).get(keys[1])
    return None if value is None else float(value)


def _sweep(sweep: dict[str, Any], routes: list[str]) -> list[str]:
    if not sweep:
        return ["<p>No sweep in this run.</p>"]
    levels = sorted(sweep, key=int)
    charts = []
    for keys, title, unit, log in SWEEP_LINES:
        drawn = [r for r in routes if r != DIRECT] if "services" in title else routes
        series = [
            Series(
                route,
                [
                    (float(level), _level_value(sweep[level].get(route, {"failed": "-"}), keys))
                    for level in levels
                ],
            )
            for route in drawn
        ]
        charts.append(line_chart(title, "concurrent sessions", unit, series, log))
    failures = [
        f"<li>{esc(route)} failed at {esc(level)} sessions: {esc(figure['failed'])}</li>"
        for level in levels
        for route, figure in sweep[level].items()
        if "failed" in figure
    ]
    if failures:
        charts.append(f'<ul class="bad">{"".join(failures)}</ul>')
    return charts


def render_html(results: dict[str, Any]) -> str:
    """The whole page of one run."""
    figures = results["figures"]
    machine, sizes = results["machine"], results["sizes"]
    routes = list(figures["ttft_ms"])
    throughput = {route: float(f["p50"]) for route, f in figures["tokens_per_s"].items()}
    cpu = figures["cpu_us_per_token"]
    body = [
        "<h1>agent-service bench</h1>",
        f'<p class="muted">{esc(machine["cpus"])} CPUs, {esc(machine["cpu_model"])}, Python '
        f"{esc(machine['python'])}. Paced: {esc(sizes['latency_tokens'])} tokens at "
        f"{esc(number(sizes['latency_rate']))}/s x {esc(sizes['rounds'])} rounds; full speed: "
        f"{esc(sizes['throughput_tokens'])} tokens x {esc(sizes['throughput_rounds'])} rounds. "
        "Boxes: p25 to p75, whiskers min to max, black line p50, coloured tick p99.</p>",
        "<h2>Targets</h2>",
        _targets(results["targets"]),
        "<h2>Latency per route</h2>",
        route_legend(routes),
        *(distribution_chart(label, "ms", figures[key]) for key, label in LATENCY_ROWS),
        "<h2>Throughput and CPU</h2>",
        bar_chart("tokens/s, one session at full upstream speed (p50)", "tokens/s", throughput),
        *(
            bar_chart(
                f"CPU us per token, all processes, {scenario.replace('_', ' ')} (p50)",
                "us",
                {route: float(p["all processes"]["p50"]) for route, p in cpu[scenario].items()},
            )
            for scenario in ("paced", "full_speed")
        ),
        "<h2>Concurrency sweep</h2>",
        route_legend(routes),
        *_sweep(figures["sweep"], routes),
        "<h2>Every figure</h2>",
        f"<details><summary>the tables the bench printed</summary><pre>{esc(render(results))}</pre></details>",
    ]
    return page("agent-service bench", "\n".join(body), PAGE_CSS)
