"""The bench report's SVG charts: distributions per route, bars, and lines over the sweep.

Each route keeps one colour in every chart. Values are drawn from the figures
JSON as written by `agent-service bench`; a figure without the quantiles a box
needs (results from older runs) is drawn with what it has: p50 and p99.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from htmlpage import LinearScale, LogScale, Scale, attrs, esc, legend, number, x_axis, y_axis

COLOURS = {"direct": "#59636e", "proxy": "#0969da", "pipeline": "#8250df", "in-process": "#1a7f37"}
OTHER = "#bc4c00"
WIDTH = 900
LEFT = 110
RIGHT = 30
ROW = 30
INSET = 16

CSS = """
svg.chart { display: block; margin: 4px 0 18px; max-width: 100%; height: auto; }
svg.chart .title { font-weight: 600; font-size: 12px; }
svg.chart .whisker { stroke-width: 1.5; }
svg.chart .median { stroke: #1f2328; stroke-width: 2; }
svg.chart .p99 { stroke-width: 2; }
svg.chart .series { fill: none; stroke-width: 2; }
"""


def colour(route: str) -> str:
    """The route's colour in every chart."""
    return COLOURS.get(route, OTHER)


def route_legend(routes: Sequence[str]) -> str:
    """One coloured swatch per route."""
    return legend((colour(route), route) for route in routes)


def _open(kind: str, height: float, title: str) -> str:
    return (
        f"<svg{attrs(class_=f'chart {kind}', role='img', aria_label=title)} "
        f'xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0f}" '
        f'viewBox="0 0 {WIDTH} {height:.0f}"><text class="title" x="2" y="14">{esc(title)}</text>'
    )


def _scale(values: Sequence[float], log: bool, start: float, end: float) -> Scale:
    if log:
        return LogScale.covering(values, start, end)
    return LinearScale.covering(values, start, end)


def distribution_chart(title: str, unit: str, figures: Mapping[str, Mapping[str, Any]]) -> str:
    """A box per route on a log axis: min-max whisker, p25-p75 box, p50 line, p99 tick."""
    values = [
        float(figure[key])
        for figure in figures.values()
        for key in ("min", "p50", "p99", "max")
        if figure.get(key) is not None
    ]
    top, rows = 24.0, len(figures)
    height = top + rows * ROW + 24
    scale = _scale(values, True, LEFT, WIDTH - RIGHT)
    parts = [
        _open("distribution", height, title),
        x_axis(scale, top, top + rows * ROW, _unit(unit)),
    ]
    for index, (route, figure) in enumerate(figures.items()):
        middle = top + index * ROW + ROW / 2
        parts.append(_box(route, figure, scale, middle, unit))
    parts.append("</svg>")
    return "".join(parts)


def _unit(unit: str) -> Callable[[float], str]:
    return lambda value: f"{number(value)} {unit}"


def _box(route: str, figure: Mapping[str, Any], scale: Scale, middle: float, unit: str) -> str:
    paint = colour(route)
    low = figure.get("min", figure["p50"])
    high = figure.get("max", figure["p99"])
    q1, q3 = figure.get("p25", figure["p50"]), figure.get("p75", figure["p50"])
    tip = ", ".join(
        f"{key} {number(float(figure[key]))} {unit}"
        for key in ("min", "p25", "p50", "p75", "p90", "p99", "max")
        if key in figure
    )
    x = {
        name: scale(float(value))
        for name, value in (("low", low), ("high", high), ("q1", q1), ("q3", q3))
    }
    p50, p99 = scale(float(figure["p50"])), scale(float(figure["p99"]))
    summary = f"{route}: {tip} (n {figure.get('n', '?')})"
    return (
        f"<g{attrs(class_='route', data_route=route)}><title>{esc(summary)}</title>"
        f'<text x="{LEFT - 8}" y="{middle + 4:.1f}" text-anchor="end">{esc(route)}</text>'
        f'<line class="whisker" stroke="{paint}" x1="{x["low"]:.1f}" x2="{x["high"]:.1f}" '
        f'y1="{middle:.1f}" y2="{middle:.1f}"/>'
        f'<rect class="box" fill="{paint}" fill-opacity="0.35" stroke="{paint}" '
        f'x="{x["q1"]:.1f}" y="{middle - 8:.1f}" width="{max(x["q3"] - x["q1"], 2):.1f}" '
        'height="16"/>'
        f'<line class="median" x1="{p50:.1f}" x2="{p50:.1f}" y1="{middle - 9:.1f}" '
        f'y2="{middle + 9:.1f}"/>'
        f'<line class="p99" stroke="{paint}" x1="{p99:.1f}" x2="{p99:.1f}" y1="{middle - 6:.1f}" '
        f'y2="{middle + 6:.1f}"/></g>'
    )


def bar_chart(title: str, unit: str, values: Mapping[str, float]) -> str:
    """One horizontal bar per route, its value written at its end."""
    top, rows = 24.0, len(values)
    height = top + rows * ROW + 24
    scale = LinearScale.covering(list(values.values()), LEFT, WIDTH - RIGHT - 60)
    parts = [_open("bars", height, title), x_axis(scale, top, top + rows * ROW, number)]
    for index, (route, value) in enumerate(values.items()):
        y = top + index * ROW + 7
        end = scale(value)
        parts.append(
            f"<g{attrs(class_='route', data_route=route)}><title>{esc(f'{route}: {number(value)} {unit}')}</title>"
            f'<text x="{LEFT - 8}" y="{y + 12:.1f}" text-anchor="end">{esc(route)}</text>'
            f'<rect class="bar" fill="{colour(route)}" x="{LEFT}" y="{y:.1f}" '
            f'width="{max(end - LEFT, 2):.1f}" height="16"/>'
            f'<text x="{end + 5:.1f}" y="{y + 12:.1f}">{esc(f"{number(value)} {unit}")}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Series:
    """One route's values at each x; None where that level failed."""

    route: str
    points: Sequence[tuple[float, float | None]]


def line_chart(title: str, x_label: str, unit: str, series: Sequence[Series], log: bool) -> str:
    """A line per route over the x values (log x axis); a failed point breaks the line."""
    height, top, bottom, left = 260.0, 24.0, 220.0, LEFT
    xs = sorted({x for line in series for x, _ in line.points})
    ys = [y for line in series for _, y in line.points if y is not None]
    x_scale = (
        LogScale(xs[0], xs[-1], left + INSET, WIDTH - RIGHT - INSET)
        if len(xs) > 1
        else LinearScale(0, 2 * xs[0], left + INSET, WIDTH - RIGHT - INSET)
    )
    y_scale = _scale(ys or [1.0], log, bottom, top)
    ticks = "".join(
        f'<text x="{x_scale(x):.1f}" y="{bottom + 14:.1f}" text-anchor="middle">{number(x)}</text>'
        for x in xs
    )
    middle = (left + WIDTH - RIGHT) / 2
    parts = [
        _open("lines", height, title),
        y_axis(y_scale, left, WIDTH - RIGHT, _unit(unit)),
        f'<g class="axis">{ticks}<text x="{middle:.1f}" y="{bottom + 32:.1f}" '
        f'text-anchor="middle">{esc(x_label)}</text></g>',
    ]
    for line in series:
        paint = colour(line.route)
        runs: list[list[tuple[float, float]]] = [[]]
        for x, y in line.points:
            if y is None:
                runs.append([])
            else:
                runs[-1].append((x_scale(x), y_scale(y)))
        path = " ".join(
            "M" + " L".join(f"{px:.1f},{py:.1f}" for px, py in run) for run in runs if run
        )
        dots = "".join(
            f'<circle class="point" fill="{paint}" cx="{x_scale(x):.1f}" cy="{y_scale(y):.1f}" r="3.5">'
            f"<title>{esc(f'{line.route}, {number(x)} {x_label}: {number(y)} {unit}')}</title></circle>"
            for x, y in line.points
            if y is not None
        )
        parts.append(
            f"<g{attrs(class_='route', data_route=line.route)}>"
            f'<path class="series" stroke="{paint}" d="{path}"/>{dots}</g>'
        )
    parts.append("</svg>")
    return "".join(parts)
