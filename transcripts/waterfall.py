"""A turn's timeline as an inline SVG waterfall: one row per model request and per tool call.

A model request's bar is dark from the request to the model's first output
(time to first token) and light while it streams; a tool call's bar runs from
the call sent to the IDE to its result. Steps are banded; every bar has a
tooltip with its exact times; a tool call's bar links to the call in the conversation.
"""

from __future__ import annotations

from htmlpage import LinearScale, attrs, esc, legend, x_axis
from transcripts.timeline import Span, Turn

WIDTH = 1100
LABELS = 230
RIGHT = 70
ROW = 22
BAR = 12
TOP = 6
BOTTOM = 24
MIN_BAR = 2.0

CSS = """
svg.waterfall { display: block; margin: 4px 0 12px; max-width: 100%; height: auto; }
svg.waterfall .band { fill: #f6f8fa; }
svg.waterfall .label { fill: var(--ink); }
svg.waterfall .duration { fill: var(--muted); }
svg.waterfall .bar.model.wait { fill: #8250df; }
svg.waterfall .bar.model.stream { fill: #c297ff; }
svg.waterfall .bar.tool { fill: #1f883d; }
svg.waterfall .bar.tool.failed, svg.waterfall .bar.failed { fill: #cf222e; }
svg.waterfall .bar.timed-out, svg.waterfall .bar.aborted { fill: #bc4c00; }
svg.waterfall .bar.cancelled { fill: #818b98; }
svg.waterfall .bar.unfinished { fill-opacity: 0.35; stroke: #59636e; stroke-dasharray: 3 2; }
svg.waterfall .first-token { stroke: #1f2328; stroke-width: 2; }
"""

LEGEND = legend(
    [
        ("#8250df", "model: request to first output"),
        ("#c297ff", "model: streaming"),
        ("#1f883d", "tool call to result"),
        ("#cf222e", "failed"),
        ("#bc4c00", "timed out or aborted"),
        ("#818b98", "cancelled"),
    ]
)


def milliseconds(seconds: float) -> str:
    """A duration for a chart label."""
    ms = seconds * 1000
    return f"{ms:,.0f} ms" if ms >= 100 else f"{ms:.1f} ms"


def _tooltip(span: Span, turn: Turn, end: float) -> str:
    parts = [f"{span.label}: starts at +{milliseconds(span.start - turn.start)}"]
    if span.first_output is not None:
        parts.append(f"first output after {milliseconds(span.first_output - span.start)}")
    parts.append(f"{span.outcome} after {milliseconds(end - span.start)}")
    if span.detail:
        parts.append(span.detail)
    return "; ".join(parts)


def _bar(x0: float, x1: float, y: float, classes: str) -> str:
    width = max(x1 - x0, MIN_BAR)
    return f'<rect{attrs(class_=classes)} x="{x0:.1f}" y="{y:.1f}" width="{width:.1f}" height="{BAR}"/>'


def _row(span: Span, step: int, turn: Turn, scale: LinearScale, y: float) -> str:
    end = span.end if span.end is not None else turn.end
    state = span.outcome.replace(" ", "-")
    x0, x1 = scale(span.start - turn.start), scale(end - turn.start)
    bar_y = y + (ROW - BAR) / 2
    parts = [f"<title>{esc(_tooltip(span, turn, end))}</title>"]
    if span.kind == "model":
        split = x1 if span.first_output is None else scale(span.first_output - turn.start)
        parts.append(_bar(x0, split, bar_y, f"bar model wait {state}"))
        if span.first_output is not None:
            parts.append(_bar(split, x1, bar_y, f"bar model stream {state}"))
            parts.append(
                f'<line class="first-token" x1="{split:.1f}" x2="{split:.1f}" '
                f'y1="{bar_y - 2:.1f}" y2="{bar_y + BAR + 2:.1f}"/>'
            )
    else:
        parts.append(_bar(x0, x1, bar_y, f"bar tool {state}"))
    label = f"step {step} · {span.label}"
    parts.append(
        f'<text class="label" x="6" y="{y + ROW / 2 + 4:.1f}">{esc(label[:40])}</text>'
        f'<text class="duration" x="{max(x1, x0 + MIN_BAR) + 4:.1f}" y="{y + ROW / 2 + 4:.1f}">'
        f"{esc(milliseconds(end - span.start))}</text>"
    )
    row = "".join(parts)
    if span.kind == "tool":
        link = attrs(href=f"#call-{span.key}", class_="span tool", data_span=span.key)
        return f"<a{link}>{row}</a>"
    return f"<g{attrs(class_='span model', data_span=span.key)}>{row}</g>"


def waterfall_svg(turn: Turn) -> str:
    """The turn's waterfall; an empty turn (no model request) draws just its axis."""
    rows = sum(len(step.spans) for step in turn.steps)
    height = TOP + rows * ROW + BOTTOM
    duration = max(turn.end - turn.start, 1e-3)
    scale = LinearScale.covering([duration * 1000], LABELS, WIDTH - RIGHT)
    seconds = LinearScale(scale.low / 1000, scale.high / 1000, scale.start, scale.end)
    parts = [
        f'<svg class="waterfall" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" role="img"'
        f"{attrs(aria_label=f'timeline of turn {turn.number}')}>"
    ]
    y = float(TOP)
    for number, step in enumerate(turn.steps, start=1):
        band = len(step.spans) * ROW
        if number % 2:
            parts.append(f'<rect class="band" x="0" y="{y:.1f}" width="{WIDTH}" height="{band}"/>')
        y += band
    parts.append(x_axis(scale, TOP, TOP + rows * ROW, lambda ms: f"{ms:g} ms"))
    y = float(TOP)
    for number, step in enumerate(turn.steps, start=1):
        for span in step.spans:
            parts.append(_row(span, number, turn, seconds, y))
            y += ROW
    parts.append("</svg>")
    return "".join(parts)
