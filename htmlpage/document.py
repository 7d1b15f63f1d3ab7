"""The page shell every report shares, and the escaping everything from outside goes through.

The page carries a Content-Security-Policy that allows no script, no fetch and
no frame: if some text ever slipped through unescaped, the browser would still
run nothing and load nothing.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

BASE_CSS = """
:root { color-scheme: light; --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --paper: #ffffff;
  --panel: #f6f8fa; --accent: #0969da; --good: #1a7f37; --bad: #cf222e; --warn: #9a6700; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 48px; font: 14px/1.5 system-ui, -apple-system, "Segoe UI",
  sans-serif; color: var(--ink); background: var(--paper); max-width: 1200px; }
h1 { font-size: 22px; margin: 0 0 8px; } h2 { font-size: 18px; margin: 28px 0 8px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
code, pre { font: 12.5px/1.45 ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", monospace; }
pre { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px;
  overflow-x: auto; white-space: pre; margin: 6px 0; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: var(--panel); }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: var(--muted); }
.good { color: var(--good); } .bad { color: var(--bad); }
.legend span { display: inline-block; margin-right: 14px; }
.legend i { display: inline-block; width: 14px; height: 10px; margin-right: 4px; vertical-align: -1px; }
svg text { font: 11px system-ui, sans-serif; fill: var(--ink); }
svg .axis line, svg .grid line { stroke: var(--line); }
svg .axis text { fill: var(--muted); }
"""


def esc(value: object) -> str:
    """Text and attribute values for HTML: `<`, `>`, `&` and both quotes escaped."""
    return html.escape(str(value), quote=True)


def attrs(**values: object) -> str:
    """` name="value"` pairs, escaped; `class_` becomes `class`, `_` in names becomes `-`."""
    return "".join(
        f' {name.rstrip("_").replace("_", "-")}="{esc(value)}"' for name, value in values.items()
    )


def legend(entries: Iterable[tuple[str, str]]) -> str:
    """A row of colour swatches, each `(colour, label)`; colours are ours, labels are text."""
    swatches = "".join(
        f'<span><i style="background:{esc(paint)}"></i>{esc(label)}</span>'
        for paint, label in entries
    )
    return f'<p class="legend muted">{swatches}</p>'


def page(title: str, body: str, css: str = "") -> str:
    """A whole HTML document: `body` is trusted markup built with `esc`; `title` is text."""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(POLICY)}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n"
        f"<style>{BASE_CSS}{css}</style>\n"
        f"</head><body>\n{body}\n</body></html>\n"
    )
