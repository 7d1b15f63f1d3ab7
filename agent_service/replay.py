"""Replay recorded sessions through the current session core.

With --verify, feed each transcript's recorded inputs to a fresh core and
compare every output with the recorded one; the first divergence is printed as
a diff (where, expected, got). `--all --verify` checks every transcript of the
database and ends with one summary line, for CI. Without --verify, print what
the current code outputs for the recorded inputs, one JSON line per output.

Exit status: 0 when everything matched, 1 when a transcript diverged, 2 when a
transcript or the database could not be read.
"""

from __future__ import annotations

import argparse
import sys

from agent_service.transcript_flags import add_db_flag, open_db
from orchestrator import CodecError
from transcripts import TranscriptError, TranscriptStore, replay_steps, verify_session

DIVERGED = 1
UNREADABLE = 2


def configure(parser: argparse.ArgumentParser) -> None:
    """A session id or --all, --verify, --db."""
    parser.add_argument("session_id", metavar="ID", nargs="?", help="the session to replay")
    parser.add_argument("--all", action="store_true", help="every transcript of the database")
    parser.add_argument(
        "--verify", action="store_true", help="compare every output with the recorded one"
    )
    add_db_flag(parser)


def _fail(message: str, code: str) -> int:
    print(f"agent-service replay: {message} [{code}]", file=sys.stderr)
    return UNREADABLE


def run(args: argparse.Namespace) -> int:
    """Replay one transcript or all of them; see the module docstring for the exit status."""
    if bool(args.all) == bool(args.session_id):
        return _fail("give one session ID or --all", "usage")
    if args.all and not args.verify:
        return _fail("--all only makes sense with --verify", "usage")
    try:
        store = open_db(args)
    except TranscriptError as exc:
        return _fail(exc.message, exc.code)
    try:
        if args.all:
            return _verify_all(store)
        if args.verify:
            return _verify_one(store, args.session_id)
        return _print_outputs(store, args.session_id)
    except (TranscriptError, CodecError) as exc:
        return _fail(exc.message, exc.code)
    finally:
        store.close()


def _verify_one(store: TranscriptStore, session_id: str) -> int:
    verdict = verify_session(store, session_id)
    print(verdict.report())
    return 0 if verdict.ok else DIVERGED


def _verify_all(store: TranscriptStore) -> int:
    matched = diverged = unreadable = 0
    for session in store.sessions():
        try:
            verdict = verify_session(store, session.session_id)
        except (TranscriptError, CodecError) as exc:
            unreadable += 1
            print(f"UNREADABLE {session.session_id}: {exc.message} [{exc.code}]")
            continue
        print(verdict.report())
        if verdict.ok:
            matched += 1
        else:
            diverged += 1
    total = matched + diverged + unreadable
    print(
        f"replay --verify: {total} transcripts, {matched} ok, {diverged} diverged, "
        f"{unreadable} unreadable"
    )
    if diverged:
        return DIVERGED
    return UNREADABLE if unreadable else 0


def _print_outputs(store: TranscriptStore, session_id: str) -> int:
    for step in replay_steps(store, store.session(session_id)):
        for payload in step.replayed:
            print(f'{{"input_seq":{step.input.seq},"payload":{payload}}}')
        if step.failure is not None:
            print(
                f"agent-service replay: input seq {step.input.seq}: {step.failure}", file=sys.stderr
            )
            return DIVERGED
    return 0
