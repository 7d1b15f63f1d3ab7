"""Scales and axes for inline SVG charts: values to pixels, round ticks, grid lines."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from htmlpage.document import esc


class Scale(Protocol):
    """Maps a value to a pixel coordinate and proposes tick values."""

    def __call__(self, value: float) -> float: ...

    def ticks(self) -> list[float]: ...


def nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    """About `count` round values, 1, 2 or 5 times a power of ten apart, from <= low to >= high."""
    if high <= low:
        high = low + 1
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step + 1e-9)
    last = math.ceil(high / step - 1e-9)
    return [round(index * step, 12) for index in range(first, last + 1)]


@dataclass(frozen=True, slots=True)
class LinearScale:
    """low..high onto start..end pixels."""

    low: float
    high: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        span = self.high - self.low or 1.0
        return self.start + (value - self.low) / span * (self.end - self.start)

    def ticks(self) -> list[float]:
        return [t for t in nice_ticks(self.low, self.high) if self.low <= t <= self.high]

    @classmethod
    def covering(cls, values: Sequence[float], start: float, end: float) -> LinearScale:
        """From 0 (or below) to a round value above every one of `values`."""
        ticks = nice_ticks(min(0.0, *values), max(values, default=1.0) or 1.0)
        return cls(ticks[0], ticks[-1], start, end)


@dataclass(frozen=True, slots=True)
class LogScale:
    """low..high (both above 0) onto start..end pixels, powers of ten as ticks."""

    low: float
    high: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        value = max(value, self.low)
        span = math.log10(self.high) - math.log10(self.low) or 1.0
        return self.start + (math.log10(value) - math.log10(self.low)) / span * (
            self.end - self.start
        )

    def ticks(self) -> list[float]:
        first = math.floor(math.log10(self.low))
        last = math.ceil(math.log10(self.high))
        return [10.0**p for p in range(first, last + 1) if self.low <= 10.0**p <= self.high]

    @classmethod
    def covering(cls, values: Sequence[float], start: float, end: float) -> LogScale:
        """From the power of ten below the smallest positive value to the one above the largest."""
        positive = [v for v in values if v > 0] or [1.0]
        low = 10.0 ** math.floor(math.log10(min(positive)))
        high = 10.0 ** math.ceil(math.log10(max(positive)))
        return cls(low, high if high > low else low * 10, start, end)


def number(value: float) -> str:
    """A tick label: no trailing zeros, thousands separated."""
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def x_axis(scale: Scale, top: float, bottom: float, label: Callable[[float], str] = number) -> str:
    """Vertical grid lines at the ticks from `top` to `bottom`, labels under them."""
    parts = ['<g class="axis">']
    for tick in scale.ticks():
        x = scale(tick)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top:.1f}" y2="{bottom:.1f}"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{bottom + 13:.1f}" text-anchor="middle">{esc(label(tick))}</text>'
        )
    parts.append("</g>")
    return "".join(parts)


def y_axis(scale: Scale, left: float, right: float, label: Callable[[float], str] = number) -> str:
    """Horizontal grid lines at the ticks from `left` to `right`, labels left of them."""
    parts = ['<g class="axis">']
    for tick in scale.ticks():
        y = scale(tick)
        parts.append(f'<line x1="{left:.1f}" x2="{right:.1f}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(
            f'<text x="{left - 5:.1f}" y="{y + 4:.1f}" text-anchor="end">{esc(label(tick))}</text>'
        )
    parts.append("</g>")
    return "".join(parts)
