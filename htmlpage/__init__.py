"""Self-contained HTML pages: one file, inline CSS and SVG, no script, nothing fetched."""

from htmlpage.document import attrs, esc, legend, page
from htmlpage.markdown import markdown_html
from htmlpage.svg import LinearScale, LogScale, Scale, nice_ticks, number, x_axis, y_axis

__all__ = [
    "LinearScale",
    "LogScale",
    "Scale",
    "attrs",
    "esc",
    "legend",
    "markdown_html",
    "nice_ticks",
    "number",
    "page",
    "x_axis",
    "y_axis",
]
