"""Replay feeds a transcript's inputs to a fresh core and finds the first output that differs."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from orchestrator.codec import decode_event, encode
from orchestrator.core import CoreConfig
from orchestrator.events import LlmTextDelta
from tests.support.recorded_session import ANSWER, record_session
from transcripts import TranscriptRecorder, TranscriptStore, replay_steps, verify_session


@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    path = tmp_path / "t.db"
    with TranscriptRecorder(path) as recorder:
        record_session(recorder, "s1")
    return path


def _tamper(path: Path, seq: int, payload: str) -> None:
    """Change one stored row, going around the append-only guard on purpose."""
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER events_append_only")
        conn.execute(
            "UPDATE events SET payload = ? WHERE session_id = 's1' AND seq = ?", [payload, seq]
        )


def _seq_of_chunk(store: TranscriptStore, text: str) -> int:
    for row in store.events("s1"):
        if row.kind == "input":
            event = decode_event(row.payload)
            if isinstance(event, LlmTextDelta) and event.text == text:
                return row.seq
    raise AssertionError(f"no chunk {text!r}")


def test_replay_matches_every_output_when_the_transcript_is_untouched(recorded: Path) -> None:
    store = TranscriptStore.open(recorded)
    verdict = verify_session(store, "s1")
    assert verdict.ok, verdict.report()
    session = store.session("s1")
    assert session.inputs == 19 and session.outputs == 29
    assert verdict.report().startswith("ok ")


def test_replay_names_the_input_and_diffs_the_output_when_a_model_chunk_was_changed(
    recorded: Path,
) -> None:
    store = TranscriptStore.open(recorded)
    seq = _seq_of_chunk(store, ANSWER[1])
    _tamper(recorded, seq, encode(LlmTextDelta("t1.2", "goodbye.")))

    verdict = verify_session(TranscriptStore.open(recorded), "s1")

    assert not verdict.ok and verdict.divergence is not None
    assert verdict.divergence.input_seq == seq
    assert verdict.divergence.recorded_seq == seq + 1
    report = verdict.report()
    assert report.startswith("DIVERGED  s1")
    assert f"(seq {seq}): " in report and '"text":"goodbye."' in report
    assert '-    "text": "hello."' in report
    assert '+    "text": "goodbye."' in report


def test_replay_reports_an_output_it_did_not_make_when_the_recording_has_an_extra_one(
    recorded: Path,
) -> None:
    store = TranscriptStore.open(recorded)
    last = list(store.events("s1"))[-1]
    with sqlite3.connect(recorded) as conn:
        conn.execute(
            "INSERT INTO events VALUES ('s1', ?, 'output', ?, 0)",
            [last.seq + 1, '{"type":"clear_tool_timer","call_id":"c9"}'],
        )
    verdict = verify_session(TranscriptStore.open(recorded), "s1")
    assert verdict.divergence is not None
    assert verdict.divergence.recorded_seq == last.seq + 1
    assert verdict.divergence.got is None
    assert "the recording has an output the replay did not make" in verdict.report()
    assert '-  "call_id": "c9"' in verdict.report()


def test_replay_reports_the_config_change_when_a_limit_differs_from_the_recording(
    recorded: Path,
) -> None:
    with sqlite3.connect(recorded) as conn:
        conn.execute(
            "UPDATE sessions SET config = json_set(config, '$.tool_timeout_s', 7.5) "
            "WHERE session_id = 's1'"
        )
    verdict = verify_session(TranscriptStore.open(recorded), "s1")
    assert verdict.divergence is not None
    assert '-  "seconds": 30.0' in verdict.report()
    assert '+  "seconds": 7.5' in verdict.report()


def test_replay_steps_give_the_recorded_outputs_again_when_nothing_changed(recorded: Path) -> None:
    store = TranscriptStore.open(recorded)
    steps = list(replay_steps(store, store.session("s1")))
    assert len(steps) == 19
    recorded_payloads = [row.payload for step in steps for row in step.recorded]
    replayed_payloads = [payload for step in steps for payload in step.replayed]
    assert replayed_payloads == recorded_payloads
    assert json.loads(steps[-1].replayed[0])["type"] == "reject_event"


def test_replay_notes_the_redaction_when_a_redacted_tool_output_changes_the_outputs(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.db"
    key = "sk-" + "Q" * 40
    output = {"content": f"OPENAI_API_KEY={key}\n" + "x" * 200}
    with TranscriptRecorder(path) as recorder:
        record_session(
            recorder,
            "s1",
            messages=["read it"],
            tool_output=output,
            config=CoreConfig(max_tool_output_chars=100),
        )
    store = TranscriptStore.open(path)
    assert store.session("s1").redactions > 0
    verdict = verify_session(store, "s1")
    assert not verdict.ok
    assert "secrets were redacted when this session was recorded" in verdict.report()
