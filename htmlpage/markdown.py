"""Markdown from a model or a user, as HTML that can carry no markup of its own.

CommonMark through markdown-it-py with raw HTML off (a `<script>` in the text
comes out as the text `<script>`), images off (a page must fetch nothing), and
markdown-it's link check (no `javascript:`, `vbscript:`, `file:` or `data:` links).
"""

from __future__ import annotations

from markdown_it import MarkdownIt

_RENDERER = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
_RENDERER.disable("image")


def markdown_html(text: str) -> str:
    """`text` rendered as CommonMark, every piece of it escaped."""
    return str(_RENDERER.render(text))
