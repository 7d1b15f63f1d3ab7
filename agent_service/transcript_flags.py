"""Flags that switch transcript recording on or point a command at a transcript database."""

from __future__ import annotations

import argparse

from agent_service.options import env
from orchestrator import NullRecorder, Recorder
from transcripts import Redactor, StoreError, TranscriptRecorder, TranscriptStore


def add_recording_flags(parser: argparse.ArgumentParser) -> None:
    """--transcripts PATH and --transcripts-redact REGEX, for the commands that run sessions."""
    parser.add_argument(
        "--transcripts",
        metavar="PATH",
        default=env("AGENT_TRANSCRIPTS"),
        help="record every session into this SQLite file (env AGENT_TRANSCRIPTS; unset: off)",
    )
    parser.add_argument(
        "--transcripts-redact",
        metavar="REGEX",
        action="append",
        default=(env("AGENT_TRANSCRIPTS_REDACT") or "").split("\n"),
        help="also replace matches of this pattern with [REDACTED] before writing (repeatable; "
        "env AGENT_TRANSCRIPTS_REDACT, one pattern a line); common key shapes always are",
    )


def open_recorder(args: argparse.Namespace) -> Recorder:
    """The recorder the flags ask for: a transcript file, or none."""
    if not args.transcripts:
        return NullRecorder()
    extra = [pattern for pattern in args.transcripts_redact if pattern]
    return TranscriptRecorder(args.transcripts, redactor=Redactor.default(extra))


def add_db_flag(parser: argparse.ArgumentParser) -> None:
    """--db PATH, for the commands that read transcripts."""
    parser.add_argument(
        "--db",
        metavar="PATH",
        default=env("AGENT_TRANSCRIPTS"),
        help="transcript database to read (env AGENT_TRANSCRIPTS)",
    )


def open_db(args: argparse.Namespace) -> TranscriptStore:
    """The database `--db` names, opened for reading; raises `StoreError`."""
    if not args.db:
        raise StoreError(
            "no transcript database: pass --db PATH or set AGENT_TRANSCRIPTS", "database_not_found"
        )
    return TranscriptStore.open(args.db)
