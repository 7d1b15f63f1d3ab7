"""`agent-service transcripts` and `agent-service replay`, run as real processes on a recorded file."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.codec import encode
from orchestrator.events import LlmTextDelta
from tests.support.procs import ROOT
from tests.support.recorded_session import ANSWER, MODEL, record_session
from transcripts import TranscriptRecorder, TranscriptStore


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "t.db"
    with TranscriptRecorder(path) as recorder:
        record_session(recorder, "s1")
        record_session(recorder, "s2", messages=["Only once"])
    return path


def cli(*args: str, db: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "AGENT_TRANSCRIPTS"}
    if db is not None:
        env["AGENT_TRANSCRIPTS"] = str(db)
    return subprocess.run(
        [sys.executable, "-m", "agent_service", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_transcripts_list_prints_one_line_per_session_when_given_a_database(
    recorded: Path,
) -> None:
    done = cli("transcripts", "list", "--db", str(recorded))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["s1", "s2"]
    assert MODEL in lines[0] and "19 in / 29 out" in lines[0]


def test_transcripts_show_prints_every_row_in_seq_order_when_the_env_names_the_database(
    recorded: Path,
) -> None:
    done = cli("transcripts", "show", "s2", db=recorded)
    assert done.returncode == 0, done.stderr
    header, rows = done.stdout.split("\n\n", 1)
    assert "session     s2" in header and f"model       {MODEL}" in header
    seqs = [int(line.split()[0]) for line in rows.splitlines()]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) == 25
    assert '{"type":"user_message","content":"Only once"' in rows


def test_transcripts_export_writes_every_stored_row_verbatim_when_the_format_is_jsonl(
    recorded: Path,
) -> None:
    done = cli("transcripts", "export", "s1", "--format", "jsonl", "--db", str(recorded))
    assert done.returncode == 0, done.stderr
    header, *rows = (json.loads(line) for line in done.stdout.splitlines())
    assert header["type"] == "session" and header["session_id"] == "s1"
    assert header["model"] == MODEL and header["codec_version"] == 1
    stored = list(TranscriptStore.open(recorded).events("s1"))
    assert [(row["seq"], row["kind"]) for row in rows] == [(r.seq, r.kind) for r in stored]
    assert [row["payload"] for row in rows] == [json.loads(r.payload) for r in stored]


def test_transcripts_export_reads_like_a_conversation_when_the_format_is_markdown(
    recorded: Path,
) -> None:
    done = cli("transcripts", "export", "s2", "--format", "markdown", "--db", str(recorded))
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith("# Session `s2`")
    assert "- tools offered: `read_file`, `write_file`, `git.diff`, `apply_patch`\n" in text
    assert "## User\n\nOnly once" in text
    assert "**Tool call** `read_file` `c1`" in text
    assert "**Tool result** `c1` (ok)" in text
    assert "## Agent\n\n" + "".join(ANSWER) in text
    assert "*Turn t1 finished (stop)" in text


def test_transcripts_names_the_problem_when_the_session_is_unknown(recorded: Path) -> None:
    done = cli("transcripts", "show", "nope", "--db", str(recorded))
    assert done.returncode == 1
    assert "[session_not_found]" in done.stderr


def test_replay_verify_exits_zero_when_the_transcript_matches(recorded: Path) -> None:
    done = cli("replay", "s1", "--verify", "--db", str(recorded))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok        s1")


def test_replay_verify_all_prints_the_diff_and_a_summary_when_one_chunk_was_changed(
    recorded: Path, tmp_path: Path
) -> None:
    tampered = tmp_path / "tampered.db"
    with sqlite3.connect(recorded) as source, sqlite3.connect(tampered) as target:
        source.backup(target)
    with sqlite3.connect(tampered) as conn:
        conn.execute("DROP TRIGGER events_append_only")
        seq = conn.execute(
            "SELECT seq FROM events WHERE session_id = 's2' AND payload = ?",
            [encode(LlmTextDelta("t1.2", ANSWER[1]))],
        ).fetchone()[0]
        conn.execute(
            "UPDATE events SET payload = ? WHERE session_id = 's2' AND seq = ?",
            [encode(LlmTextDelta("t1.2", "changed.")), seq],
        )

    one = cli("replay", "s2", "--verify", "--db", str(tampered))
    every = cli("replay", "--all", "--verify", "--db", str(tampered))

    assert one.returncode == 1
    assert one.stdout.startswith("DIVERGED  s2")
    assert f"(seq {seq}): " + encode(LlmTextDelta("t1.2", "changed.")) in one.stdout
    assert f"--- recorded (seq {seq + 1})" in one.stdout
    assert '-    "text": "hello."\n+    "text": "changed."' in one.stdout
    assert every.returncode == 1
    assert every.stdout.startswith("ok        s1")
    assert every.stdout.splitlines()[-1] == (
        "replay --verify: 2 transcripts, 1 ok, 1 diverged, 0 unreadable"
    )


def test_replay_prints_the_current_outputs_when_not_verifying(recorded: Path) -> None:
    done = cli("replay", "s2", "--db", str(recorded))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    stored = [r for r in TranscriptStore.open(recorded).events("s2") if r.kind == "output"]
    assert [line["payload"] for line in lines] == [json.loads(r.payload) for r in stored]


def test_replay_exits_two_when_there_is_no_database(tmp_path: Path) -> None:
    done = cli("replay", "--all", "--verify", "--db", str(tmp_path / "missing.db"))
    assert done.returncode == 2
    assert "[database_not_found]" in done.stderr
