"""Records sessions into a transcript database: encode and buffer on the hot path, write in `flush`."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from importlib import metadata
from types import TracebackType
from typing import TypeVar

from orchestrator import CODEC_VERSION, Command, CoreConfig, Event, encode, encode_config
from transcripts.errors import RecordingError, StoreError
from transcripts.redaction import Redactor
from transcripts.store import INPUT, OUTPUT, NewRow, NewSession, TranscriptStore

_Item = TypeVar("_Item")

log = logging.getLogger(__name__)


def _drain(buffer: deque[_Item]) -> list[_Item]:
    """Take what is in `buffer` now; appends from other threads during the drain stay queued."""
    return [buffer.popleft() for _ in range(len(buffer))]


def _product_version() -> str:
    try:
        return metadata.version("agent-service")
    except metadata.PackageNotFoundError:
        return "unknown"


class TranscriptRecorder:
    """An `orchestrator.recording.Recorder` that keeps every session in a SQLite transcript file.

    `session_started` and `record_*` only encode and append to memory. `flush`
    redacts what is buffered and writes it in one transaction; it may run in a
    worker thread (`asyncio.to_thread(recorder.flush)`) while the event loop
    keeps recording, and concurrent flushes are written one after the other.
    A failed flush keeps its rows buffered for the next one; `problem` says why
    the store cannot write while it cannot, and each change of that state is
    logged once.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        redactor: Redactor | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = TranscriptStore.open(path, create=True)
        self.path = self._store.path
        self._redactor = redactor if redactor is not None else Redactor.default()
        self._clock = clock
        self._meta = {
            "agent_service_version": _product_version(),
            "redaction_patterns": list(self._redactor.patterns),
        }
        self._seqs: dict[str, int] = {}
        self._new_sessions: deque[NewSession] = deque()
        self._rows: deque[NewRow] = deque()
        self._settled: dict[str, int] = {}
        self._lock = threading.Lock()
        self.problem: str | None = None

    # ---- the Recorder protocol ------------------------------------------------------------

    def session_started(
        self, session_id: str, config: CoreConfig, model: str, owner: str = ""
    ) -> None:
        """Start the session's transcript; raises `RecordingError` if the id is taken."""
        with self._lock:
            taken = session_id in self._seqs or self._store.has_session(session_id)
        if taken:
            raise RecordingError(f"session {session_id!r} is recorded already", "session_exists")
        self._seqs[session_id] = 0
        self._new_sessions.append(
            (
                session_id,
                self._clock(),
                model,
                encode_config(config),
                json.dumps({**self._meta, "owner": owner}),
                CODEC_VERSION,
            )
        )

    def session_resumed(self, session_id: str) -> None:
        """Go on numbering a stored session's rows after its last one."""
        with self._lock:
            self._seqs[session_id] = self._store.last_seq(session_id)

    def reserve_seq(self, session_id: str, up_to: int) -> None:
        """Commit the reservation now; a store that cannot write is reported, not raised."""
        with self._lock:
            try:
                self._store.reserve_seq(session_id, up_to)
            except StoreError as exc:
                self._note(exc.message)

    def settle_seq(self, session_id: str, last_seq: int) -> None:
        """Buffer the exact last seq, written with the next flush."""
        with self._lock:
            self._settled[session_id] = last_seq

    def record_input(self, session_id: str, event: Event) -> None:
        """Buffer the event about to be fed to the session's core."""
        payload = encode(event)
        try:
            seq = self._seqs[session_id] + 1
        except KeyError:
            raise _not_started(session_id) from None
        self._seqs[session_id] = seq
        self._rows.append((session_id, seq, INPUT, payload, self._clock()))

    def record_outputs(self, session_id: str, commands: list[Command]) -> None:
        """Buffer the commands the core returned for the last input, one row each."""
        payloads = [encode(command) for command in commands]
        try:
            seq = self._seqs[session_id]
        except KeyError:
            raise _not_started(session_id) from None
        now = self._clock()
        append = self._rows.append
        for payload in payloads:
            seq += 1
            append((session_id, seq, OUTPUT, payload, now))
        self._seqs[session_id] = seq

    def flush(self) -> None:
        """Redact and write everything buffered in one transaction; raises `StoreError`."""
        with self._lock:
            rows = _drain(self._rows)
            sessions = _drain(self._new_sessions)
            settled, self._settled = self._settled, {}
            if not rows and not sessions and not settled:
                return
            try:
                self._store.append(*self._redacted(sessions, rows), settled)
            except StoreError as exc:
                self._new_sessions.extendleft(reversed(sessions))
                self._rows.extendleft(reversed(rows))
                self._settled = settled | self._settled
                self._note(exc.message)
                raise
            self._note(None)

    def _note(self, problem: str | None) -> None:
        """Log a change between writing and not writing, once per change."""
        if (problem is None) == (self.problem is None):
            return
        self.problem = problem
        if problem is None:
            log.warning("transcript store writes again", extra={"path": str(self.path)})
        else:
            log.error(
                "transcript store cannot write; rows are kept in memory and retried",
                extra={"path": str(self.path), "reason": problem},
            )

    def close(self) -> None:
        """Flush, then release the file; rows the store cannot take are counted in the log."""
        try:
            self.flush()
        except StoreError as exc:
            log.error(
                "transcript rows lost at shutdown: the store cannot write",
                extra={"path": str(self.path), "rows": len(self._rows), "reason": exc.message},
            )
        finally:
            with self._lock:
                self._store.close()

    # ---- helpers --------------------------------------------------------------------------

    def _redacted(
        self, sessions: list[NewSession], rows: list[NewRow]
    ) -> tuple[list[NewSession], list[NewRow], dict[str, int]]:
        redact = self._redactor.redact
        counts: dict[str, int] = {}
        clean_sessions: list[NewSession] = []
        for session_id, created_at, model, config, meta, version in sessions:
            config, found = redact(config)
            counts[session_id] = counts.get(session_id, 0) + found
            clean_sessions.append((session_id, created_at, model, config, meta, version))
        clean_rows: list[NewRow] = []
        for session_id, seq, kind, payload, recorded_at in rows:
            payload, found = redact(payload)
            if found:
                counts[session_id] = counts.get(session_id, 0) + found
            clean_rows.append((session_id, seq, kind, payload, recorded_at))
        return clean_sessions, clean_rows, counts

    def __enter__(self) -> TranscriptRecorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _not_started(session_id: str) -> RecordingError:
    return RecordingError(
        f"session {session_id!r} was not started on this recorder", "session_not_started"
    )
