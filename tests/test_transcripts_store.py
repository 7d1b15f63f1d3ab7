"""The recorder buffers on the hot path and writes whole batches into a private, append-only file."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from orchestrator.events import LlmTextDelta, UserMessageReceived
from tests.support.recorded_session import CONFIG, MODEL, SessionDriver, record_session
from transcripts import (
    INPUT,
    OUTPUT,
    RecordingError,
    SessionNotFound,
    StoreError,
    TranscriptRecorder,
    TranscriptStore,
)


def _rows(path: Path, session_id: str) -> list[tuple[int, str]]:
    with sqlite3.connect(path) as conn:
        return list(
            conn.execute(
                "SELECT seq, kind FROM events WHERE session_id = ? ORDER BY seq", [session_id]
            )
        )


def test_recorder_creates_the_database_and_its_wal_files_owner_only_when_umask_allows_more(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.db"
    previous = os.umask(0)
    try:
        recorder = TranscriptRecorder(path)
        record_session(recorder, "s1", messages=["hi"])
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        modes = {file.name: stat.S_IMODE(file.stat().st_mode) for file in files}
        recorder.close()
    finally:
        os.umask(previous)
    assert modes == {"t.db": 0o600, "t.db-wal": 0o600, "t.db-shm": 0o600}


def test_store_uses_wal_journal_when_created(tmp_path: Path) -> None:
    TranscriptRecorder(tmp_path / "t.db").close()
    with sqlite3.connect(tmp_path / "t.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_recorder_writes_nothing_when_not_flushed_and_the_whole_batch_at_flush(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.db"
    with TranscriptRecorder(path) as recorder:
        recorder.session_started("s1", CONFIG, MODEL)
        recorder.flush()
        for text in ("a", "b", "c"):
            recorder.record_input("s1", LlmTextDelta("t1.1", text))
            recorder.record_outputs("s1", [])
        assert _rows(path, "s1") == []
        recorder.flush()
        assert _rows(path, "s1") == [(1, INPUT), (2, INPUT), (3, INPUT)]


def test_recorder_numbers_each_session_on_its_own_when_sessions_interleave(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.db"
    with TranscriptRecorder(path) as recorder:
        first = SessionDriver.start(recorder, "s1")
        second = SessionDriver.start(recorder, "s2")
        first.feed(UserMessageReceived("one"))
        second.feed(UserMessageReceived("two"))
        first.feed(LlmTextDelta("t1.1", "x"))
    assert _rows(path, "s1") == [(1, INPUT), (2, OUTPUT), (3, OUTPUT), (4, INPUT), (5, OUTPUT)]
    assert _rows(path, "s2") == [(1, INPUT), (2, OUTPUT), (3, OUTPUT)]


def test_store_refuses_to_change_a_recorded_row_when_asked_to_update(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    with TranscriptRecorder(path) as recorder:
        record_session(recorder, "s1", messages=["hi"])
    with sqlite3.connect(path) as conn, pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE events SET payload = '{}' WHERE seq = 1")


def test_recorder_refuses_a_session_id_when_the_database_has_it_already(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    with TranscriptRecorder(path) as recorder:
        record_session(recorder, "s1", messages=["hi"])
        with pytest.raises(RecordingError) as in_memory:
            recorder.session_started("s1", CONFIG, MODEL)
    with TranscriptRecorder(path) as recorder, pytest.raises(RecordingError) as on_disk:
        recorder.session_started("s1", CONFIG, MODEL)
    assert in_memory.value.code == on_disk.value.code == "session_exists"


def test_recorder_refuses_events_when_the_session_was_not_started(tmp_path: Path) -> None:
    with TranscriptRecorder(tmp_path / "t.db") as recorder:
        with pytest.raises(RecordingError) as caught:
            recorder.record_input("nobody", LlmTextDelta("t1.1", "x"))
        with pytest.raises(RecordingError):
            recorder.record_outputs("nobody", [])
    assert caught.value.code == "session_not_started"


def test_recorder_keeps_every_row_in_order_when_flushed_from_another_thread(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.db"
    recorder = TranscriptRecorder(path)
    recorder.session_started("s1", CONFIG, MODEL)
    done = threading.Event()

    def flush_until_done() -> None:
        while not done.is_set():
            recorder.flush()

    flusher = threading.Thread(target=flush_until_done)
    flusher.start()
    try:
        for index in range(3000):
            recorder.record_input("s1", LlmTextDelta("t1.1", str(index)))
    finally:
        done.set()
        flusher.join()
    recorder.close()
    assert [seq for seq, _ in _rows(path, "s1")] == list(range(1, 3001))


def test_store_reports_a_missing_database_when_opened_for_reading(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as caught:
        TranscriptStore.open(tmp_path / "missing.db")
    assert caught.value.code == "database_not_found"
    assert not (tmp_path / "missing.db").exists()


def test_store_refuses_a_foreign_sqlite_file_when_opened_for_reading(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    with pytest.raises(StoreError) as caught:
        TranscriptStore.open(path)
    assert caught.value.code == "not_a_transcript_database"
    with sqlite3.connect(path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert tables == {"notes"}


def test_store_reports_an_unknown_session_when_asked_for_it(tmp_path: Path) -> None:
    TranscriptRecorder(tmp_path / "t.db").close()
    store = TranscriptStore.open(tmp_path / "t.db")
    with pytest.raises(SessionNotFound) as caught:
        store.session("nope")
    assert caught.value.code == "session_not_found"
