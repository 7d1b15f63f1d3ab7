"""List, show and export the recorded sessions of a transcript database.

`list` prints one line per session, `show ID` one line per row, and `export ID`
the whole session as JSON lines (every row, exact) or Markdown (the
conversation, for people).

Exit status: 0 on success, 1 when the database or the session cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable

from agent_service.transcript_flags import add_db_flag, open_db
from orchestrator.codec import CodecError
from transcripts import TranscriptError
from transcripts.export import jsonl_lines, markdown_lines, session_line, show_lines

FORMATS = {"jsonl": jsonl_lines, "markdown": markdown_lines}


def configure(parser: argparse.ArgumentParser) -> None:
    """Subcommands list, show and export, each with --db."""
    common = argparse.ArgumentParser(add_help=False)
    add_db_flag(common)
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser(
        "list", parents=[common], help="one line per session", description="One line per session."
    )
    show = actions.add_parser(
        "show",
        parents=[common],
        help="a session's rows",
        description="A session's header, then one line per row (payloads clipped).",
    )
    show.add_argument("session_id", metavar="ID")
    export = actions.add_parser(
        "export",
        parents=[common],
        help="a session as jsonl or markdown",
        description="Write a session to stdout as JSON lines or as Markdown.",
    )
    export.add_argument("session_id", metavar="ID")
    export.add_argument("--format", choices=sorted(FORMATS), default="jsonl")


def run(args: argparse.Namespace) -> int:
    """Print what was asked for; errors go to stderr with their code."""
    try:
        store = open_db(args)
        try:
            if args.action == "list":
                sessions = store.sessions()
                if not sessions:
                    print(f"no transcripts in {store.path}", file=sys.stderr)
                lines: Iterable[str] = map(session_line, sessions)
            elif args.action == "show":
                lines = show_lines(store, store.session(args.session_id))
            else:
                lines = FORMATS[args.format](store, store.session(args.session_id))
            for line in lines:
                print(line)
        finally:
            store.close()
    except (TranscriptError, CodecError) as exc:
        print(f"error: {exc.message} [{exc.code}]", file=sys.stderr)
        return 1
    return 0
