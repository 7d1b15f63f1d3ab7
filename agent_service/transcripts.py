"""List, show and export the recorded sessions of a transcript database.

`list` prints a table of the sessions, `show ID` one line per row, `export ID`
the whole session as JSON lines (every row, exact) or Markdown (the
conversation, for people), and `view ID` one self-contained HTML page: each
turn's latency waterfall and the conversation.

Exit status: 0 on success, 1 when the database or the session cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

from agent_service.transcript_flags import add_db_flag, open_db
from orchestrator import CodecError
from transcripts import (
    TranscriptError,
    jsonl_lines,
    list_lines,
    markdown_lines,
    session_rows,
    show_lines,
    view_html,
)

FORMATS = {"jsonl": jsonl_lines, "markdown": markdown_lines}


def configure(parser: argparse.ArgumentParser) -> None:
    """Subcommands list, show and export, each with --db."""
    common = argparse.ArgumentParser(add_help=False)
    add_db_flag(common)
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser(
        "list",
        parents=[common],
        help="a table of the sessions",
        description="One row per session: start, duration, model, turns, rows, first message.",
    )
    show = actions.add_parser(
        "show",
        parents=[common],
        help="a session's rows",
        description="A session's header, then one line per row: seq, kind, seconds since the "
        "session started, and what the row holds.",
    )
    show.add_argument("session_id", metavar="ID")
    show.add_argument(
        "--raw", action="store_true", help="each row's stored JSON (clipped) instead of words"
    )
    export = actions.add_parser(
        "export",
        parents=[common],
        help="a session as jsonl or markdown",
        description="Write a session to stdout as JSON lines or as Markdown.",
    )
    export.add_argument("session_id", metavar="ID")
    export.add_argument("--format", choices=sorted(FORMATS), default="jsonl")
    view = actions.add_parser(
        "view",
        parents=[common],
        help="a session as one HTML page: waterfall and conversation",
        description="Write one self-contained HTML page (no script, nothing fetched): each "
        "turn's timeline of model requests and tool calls, then the conversation.",
    )
    view.add_argument("session_id", metavar="ID")
    view.add_argument(
        "--out",
        metavar="FILE",
        help="where to write the page; - for stdout (default: ID.html in this directory)",
    )


def run(args: argparse.Namespace) -> int:
    """Print what was asked for; errors go to stderr with their code."""
    try:
        store = open_db(args)
        try:
            if args.action == "list":
                rows = session_rows(store)
                if len(rows) == 1:
                    print(f"no transcripts in {store.path}", file=sys.stderr)
                lines: Iterable[str] = list_lines(rows) if len(rows) > 1 else ()
            elif args.action == "view":
                lines = _write_page(args, view_html(store, store.session(args.session_id)))
            elif args.action == "show":
                lines = show_lines(store, store.session(args.session_id), args.raw)
            else:
                lines = FORMATS[args.format](store, store.session(args.session_id))
            for line in lines:
                print(line)
        finally:
            store.close()
    except (TranscriptError, CodecError) as exc:
        print(f"agent-service transcripts: {exc.message} [{exc.code}]", file=sys.stderr)
        return 1
    return 0


def _write_page(args: argparse.Namespace, html: str) -> list[str]:
    """Write the page where --out says; the lines to print (the page itself for `-`)."""
    if args.out == "-":
        return [html.removesuffix("\n")]
    path = Path(args.out or f"{args.session_id}.html")
    path.write_text(html, encoding="utf-8")
    return [f"written to {path}"]
