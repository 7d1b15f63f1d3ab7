"""The transcript database: its schema, its durability settings, batched appends and reads.

One SQLite file, two tables and a side table:
- `sessions`: one row per recorded session (id, creation time, model, core
  config JSON, meta JSON, codec version, count of redactions);
- `events`: append-only rows (session id, seq, kind `input`/`output`, payload
  JSON, recorded time), keyed and ordered by (session id, seq). `seq` is the
  transcript's own counter, one per row of the session, in the order things
  happened; times are for people, never for ordering.
- `seq_reservations`: per session, the highest IDE event seq the live
  orchestrator may have sent (reserved ahead, written before sending), so a
  session rebuilt after a crash never gives a seq twice.

Durability: WAL journal with `synchronous=NORMAL`. A committed batch survives
the process being killed (the WAL is written before the commit returns); a
power loss or OS crash may lose the last batches committed since the last
checkpoint, but never corrupts the file. The file is created with mode 0600,
and SQLite gives its `-wal` and `-shm` files the same mode.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from transcripts.errors import SessionNotFound, StoreError

SCHEMA_VERSION = 1
INPUT = "input"
OUTPUT = "output"

NewSession = tuple[str, float, str, str, str, int]
"""(session_id, created_at, model, config JSON, meta JSON, codec_version)"""

NewRow = tuple[str, int, str, str, float]
"""(session_id, seq, kind, payload JSON, recorded_at)"""


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One recorded session, with its row counts."""

    session_id: str
    created_at: float
    model: str
    config: str
    meta: dict[str, Any]
    codec_version: int
    redactions: int
    inputs: int
    outputs: int


@dataclass(frozen=True, slots=True)
class Overview:
    """What a listing shows of a session without decoding its rows."""

    turns: int
    first_message: str
    last_recorded_at: float


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One stored row of a session: an input event or an output command, as JSON."""

    seq: int
    kind: str
    payload: str
    recorded_at: float


_SESSIONS_QUERY = """
SELECT s.session_id, s.created_at, s.model, s.config, s.meta, s.codec_version, s.redactions,
       coalesce(sum(e.kind = 'input'), 0) AS inputs,
       coalesce(sum(e.kind = 'output'), 0) AS outputs
FROM sessions AS s LEFT JOIN events AS e ON e.session_id = s.session_id
{where}
GROUP BY s.session_id
ORDER BY s.created_at, s.session_id
"""

_USER_MESSAGES_QUERY = """
SELECT m.session_id, m.payload FROM events AS m
LEFT JOIN events AS r ON r.session_id = m.session_id AND r.seq = m.seq + 1
    AND r.kind = 'output' AND r.payload LIKE '{"type":"reject_event"%'
WHERE m.kind = 'input' AND m.payload LIKE '{"type":"user_message"%' AND r.seq IS NULL
ORDER BY m.session_id, m.seq
"""
_RESERVATIONS = """
CREATE TABLE IF NOT EXISTS seq_reservations (session_id TEXT PRIMARY KEY, reserved INTEGER NOT NULL)
"""
_RESERVE = (
    "INSERT INTO seq_reservations (session_id, reserved) VALUES (?, ?) "
    "ON CONFLICT (session_id) DO UPDATE SET reserved = max(reserved, excluded.reserved)"
)
_SETTLE = (
    "INSERT INTO seq_reservations (session_id, reserved) VALUES (?, ?) "
    "ON CONFLICT (session_id) DO UPDATE SET reserved = excluded.reserved"
)

_APPEND_ONLY = """
CREATE TRIGGER IF NOT EXISTS events_append_only BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'transcript events are append-only'); END
"""


def _create_private_file(path: Path) -> None:
    """Create the database file readable by its owner only, before SQLite opens it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)


class TranscriptStore:
    """An open transcript database. Not thread-safe: callers serialize access."""

    def __init__(self, db: Database, path: Path) -> None:
        self._db = db
        self.path = path

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, create: bool = False) -> TranscriptStore:
        """Open the database at `path`; with `create`, make it (0600, WAL, schema) if missing."""
        path = Path(path)
        exists = path.exists()
        if not exists and not create:
            raise StoreError(f"no transcript database at {path}", "database_not_found")
        try:
            if not exists:
                _create_private_file(path)
            conn = sqlite3.connect(path, check_same_thread=False, timeout=5.0)
        except FileExistsError:
            return cls.open(path, create=create)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open transcript database {path}: {exc}") from None
        try:
            store = cls(Database(conn, execute_plugins=False), path)
            store._prepare(create)
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"cannot open transcript database {path}: {exc}") from None
        except StoreError:
            conn.close()
            raise
        return store

    def _prepare(self, create: bool) -> None:
        db = self._db
        db.execute("PRAGMA foreign_keys = ON")
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        tables = set(db.table_names())
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has transcript schema {version}; this code reads {SCHEMA_VERSION}",
                "unsupported_schema",
            )
        if not {"sessions", "events"} <= tables:
            if not create or (tables and version != SCHEMA_VERSION):
                raise StoreError(
                    f"{self.path} is not a transcript database", "not_a_transcript_database"
                )
            self._create_schema()
        if create:
            db.execute(_RESERVATIONS)
            db.enable_wal()
        db.execute("PRAGMA synchronous = NORMAL")

    def _create_schema(self) -> None:
        db = self._db
        db.table("sessions").create(
            {
                "session_id": str,
                "created_at": float,
                "model": str,
                "config": str,
                "meta": str,
                "codec_version": int,
                "redactions": int,
            },
            pk="session_id",
            not_null={
                "session_id",
                "created_at",
                "model",
                "config",
                "meta",
                "codec_version",
                "redactions",
            },
            defaults={"redactions": 0},
            if_not_exists=True,
        )
        db.table("events").create(
            {"session_id": str, "seq": int, "kind": str, "payload": str, "recorded_at": float},
            pk=("session_id", "seq"),
            not_null={"session_id", "seq", "kind", "payload", "recorded_at"},
            foreign_keys=[("session_id", "sessions", "session_id")],
            if_not_exists=True,
        )
        db.execute(_APPEND_ONLY)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # ---- writing -------------------------------------------------------------------------

    def has_session(self, session_id: str) -> bool:
        """Whether a session with this id is stored already."""
        for _ in self._query("SELECT 1 FROM sessions WHERE session_id = ?", [session_id]):
            return True
        return False

    def append(
        self,
        sessions: Sequence[NewSession],
        rows: Sequence[NewRow],
        redactions: dict[str, int],
        settled: dict[str, int] | None = None,
    ) -> None:
        """Write new sessions, rows, redaction counts and settled seq reservations in one
        transaction: all or nothing."""
        conn = self._db.conn
        try:
            with self._db.atomic():
                conn.executemany(
                    "INSERT INTO sessions (session_id, created_at, model, config, meta, "
                    "codec_version) VALUES (?, ?, ?, ?, ?, ?)",
                    sessions,
                )
                conn.executemany(
                    "INSERT INTO events (session_id, seq, kind, payload, recorded_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                conn.executemany(
                    "UPDATE sessions SET redactions = redactions + ? WHERE session_id = ?",
                    [(count, sid) for sid, count in redactions.items() if count],
                )
                conn.executemany(_SETTLE, list((settled or {}).items()))
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot write to transcript database {self.path}: {exc}", "write_failed"
            ) from None

    def reserve_seq(self, session_id: str, up_to: int) -> None:
        """Commit that the session may send IDE events numbered up to `up_to`."""
        try:
            with self._db.atomic():
                self._db.conn.execute(_RESERVE, (session_id, up_to))
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot write to transcript database {self.path}: {exc}", "write_failed"
            ) from None

    # ---- reading -------------------------------------------------------------------------

    def last_seq(self, session_id: str) -> int:
        """The highest stored seq of the session (0 when it has no rows)."""
        row = self._db.conn.execute(
            "SELECT coalesce(max(seq), 0) FROM events WHERE session_id = ?", (session_id,)
        ).fetchone()
        return int(row[0])

    def reserved_seq(self, session_id: str) -> int:
        """The highest IDE event seq the session may have sent (0 when none was reserved)."""
        try:
            row = self._db.conn.execute(
                "SELECT reserved FROM seq_reservations WHERE session_id = ?", (session_id,)
            ).fetchone()
        except sqlite3.OperationalError:
            return 0  # a database written before reservations existed
        return int(row[0]) if row else 0

    def last_recorded_at(self, session_id: str) -> float:
        """When the session's newest row was written (its creation time when it has none)."""
        row = self._db.conn.execute(
            "SELECT max(recorded_at) FROM events WHERE session_id = ?", (session_id,)
        ).fetchone()
        return float(row[0]) if row[0] is not None else self.session(session_id).created_at

    def sessions(self) -> list[SessionRecord]:
        """Every recorded session, oldest first."""
        return [_session(row) for row in self._query(_SESSIONS_QUERY.format(where=""), [])]

    def overviews(self) -> dict[str, Overview]:
        """Per session with rows: accepted user messages (turns), the first one, the last time."""
        last = {
            row["session_id"]: float(row["last"])
            for row in self._query(
                "SELECT session_id, max(recorded_at) AS last FROM events GROUP BY session_id", []
            )
        }
        messages: dict[str, list[str]] = {}
        for row in self._query(_USER_MESSAGES_QUERY, []):
            messages.setdefault(row["session_id"], []).append(row["payload"])
        overviews = {}
        for session_id, last_at in last.items():
            accepted = messages.get(session_id, [])
            first = json.loads(accepted[0])["content"] if accepted else ""
            overviews[session_id] = Overview(len(accepted), first, last_at)
        return overviews

    def session(self, session_id: str) -> SessionRecord:
        """One recorded session; raises `SessionNotFound`."""
        query = _SESSIONS_QUERY.format(where="WHERE s.session_id = ?")
        for row in self._query(query, [session_id]):
            return _session(row)
        raise SessionNotFound(f"no transcript of session {session_id!r} in {self.path}")

    def events(self, session_id: str) -> Iterator[EventRecord]:
        """The session's rows in seq order, read lazily."""
        query = (
            "SELECT seq, kind, payload, recorded_at FROM events WHERE session_id = ? ORDER BY seq"
        )
        for row in self._query(query, [session_id]):
            yield EventRecord(**row)

    def _query(self, sql: str, params: list[Any]) -> Iterator[dict[str, Any]]:
        try:
            yield from self._db.query(sql, params)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read transcript database {self.path}: {exc}") from None

    def close(self) -> None:
        """Release the file."""
        self._db.close()


def _session(row: dict[str, Any]) -> SessionRecord:
    return SessionRecord(**{**row, "meta": json.loads(row["meta"])})
