"""A process that records a session and then waits mid-turn with rows it has not flushed.

Run as `python -m tests.support.recording_child DB SESSION_ID`. It prints
`flushed N` after each flush (N: rows of the session written so far), records
one more user message and two model chunks, prints `unflushed N`, and sleeps
until it is killed (or 60 s pass: it then exits 3, so a broken test cannot hang).
"""

from __future__ import annotations

import sys
import time

from orchestrator.events import LlmTextDelta, UserMessageReceived
from tests.support.recorded_session import SessionDriver
from transcripts import TranscriptRecorder


def main(db: str, session_id: str) -> int:
    recorder = TranscriptRecorder(db)
    driver = SessionDriver.start(
        recorder, session_id, on_flush=lambda rows: print(f"flushed {rows}", flush=True)
    )
    driver.turn("What does the README say?")
    driver.feed(UserMessageReceived("And the tests?"))
    driver.feed(LlmTextDelta("t2.1", "Let me "))
    driver.feed(LlmTextDelta("t2.1", "look."))
    print(f"unflushed {driver.rows}", flush=True)
    time.sleep(60)
    return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
