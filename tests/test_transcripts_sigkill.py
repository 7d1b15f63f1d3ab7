"""A recording process killed mid-session leaves a database that opens and holds every flushed row."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.support.procs import ROOT
from transcripts import TranscriptStore, verify_session


def test_recorder_keeps_every_flushed_row_when_its_process_is_killed_mid_session(
    tmp_path: Path,
) -> None:
    db = tmp_path / "t.db"
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.support.recording_child", str(db), "s1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    flushed: list[int] = []
    unflushed = 0
    try:
        for line in child.stdout:
            word, rows = line.split()
            if word == "flushed":
                flushed.append(int(rows))
            else:
                unflushed = int(rows)
                break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    assert len(flushed) >= 4 and unflushed > flushed[-1]

    store = TranscriptStore.open(db)
    assert [row.seq for row in store.events("s1")] == list(range(1, flushed[-1] + 1))
    assert verify_session(store, "s1").ok
