"""`agent-service transcripts` and `agent-service replay`, run as real processes on a recorded file."""

from __future__ import annotations

import json
import os
import re
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

DIFF = 'diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-print("a")\n+print("b")\n'


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "t.db"
    with TranscriptRecorder(path) as recorder:
        record_session(recorder, "s1")
        record_session(recorder, "s2", messages=["Only once"])
        record_session(recorder, "s3", messages=["Show me\nthe diff"], tool_output={"diff": DIFF})
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


def test_transcripts_list_prints_a_table_of_the_sessions_when_given_a_database(
    recorded: Path,
) -> None:
    done = cli("transcripts", "list", "--db", str(recorded))
    assert done.returncode == 0, done.stderr
    header, *lines = done.stdout.splitlines()
    assert re.split(r"\s{2,}", header) == [
        "SESSION",
        "STARTED",
        "DURATION",
        "MODEL",
        "TURNS",
        "ROWS IN/OUT",
        "FIRST MESSAGE",
    ]
    row = re.compile(r"(\S+) +(\S+Z) +([\d.]+ s)  (\S+) +(\d+) +(\d+/\d+)  (.*)")
    rows = [row.fullmatch(line) for line in lines]
    assert all(rows), lines
    cells = [match.groups() for match in rows if match]
    assert [(c[0], c[3], c[4], c[5]) for c in cells] == [
        ("s1", MODEL, "2", "19/29"),
        ("s2", MODEL, "1", "10/15"),
        ("s3", MODEL, "1", "10/15"),
    ], "the late chunk after the turns is no turn"
    assert [c[6] for c in cells] == ["What does the README say?", "Only once", "Show me the diff"]


def test_transcripts_show_prints_every_row_in_seq_order_when_the_env_names_the_database(
    recorded: Path,
) -> None:
    done = cli("transcripts", "show", "s2", db=recorded)
    assert done.returncode == 0, done.stderr
    header, rows = done.stdout.split("\n\n", 1)
    assert "session     s2" in header and f"model       {MODEL}" in header
    assert "config      max_steps 5, tool_timeout_s 30.0" in header
    titles, *lines = rows.splitlines()
    assert titles.split() == ["SEQ", "KIND", "TIME", "WHAT"]
    seqs = [int(line.split()[0]) for line in lines]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) == 25
    assert re.fullmatch(r" +1  input +\+\d+\.\d{3}s  user_message \"Only once\"", lines[0])
    assert lines[1].endswith("start_llm_request t1.1: 2 messages, 4 tools")
    assert any(
        line.endswith('tool_result c1 ok {"content":"# Demo\\n\\nHello from the workspace.\\n"}')
        for line in lines
    )
    assert any(
        line.endswith("emit state streaming -> awaiting_tool (event seq 5)") for line in lines
    )
    assert "{" not in "".join(line for line in lines if "tool_" not in line)


def test_transcripts_show_raw_prints_the_stored_json_of_each_row(recorded: Path) -> None:
    done = cli("transcripts", "show", "s2", "--raw", "--db", str(recorded))
    assert done.returncode == 0, done.stderr
    rows = done.stdout.split("\n\n", 1)[1].splitlines()
    assert rows[0].split() == ["SEQ", "KIND", "TIME", "PAYLOAD"]
    assert '{"type":"user_message","content":"Only once"' in rows[1]


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
    assert (
        "**Tool result** `c1` (ok)\n\n`content`:\n\n```md\n# Demo\n\nHello from the workspace.\n```"
        in text
    )
    assert '"content"' not in text and "\\n" not in text


def test_transcripts_export_shows_a_diff_as_a_diff_block_when_the_format_is_markdown(
    recorded: Path,
) -> None:
    done = cli("transcripts", "export", "s3", "--format", "markdown", "--db", str(recorded))
    assert done.returncode == 0, done.stderr
    assert "**Tool result** `c1` (ok)\n\n`diff`:\n\n```diff\n" + DIFF + "```\n" in done.stdout
    assert "## User\n\nShow me\nthe diff" in done.stdout


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
        "replay --verify: 3 transcripts, 2 ok, 1 diverged, 0 unreadable"
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
