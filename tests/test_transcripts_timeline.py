"""The waterfall's data: turns, steps and spans read back from a recording with a known clock."""

from __future__ import annotations

import itertools
from pathlib import Path

from orchestrator.events import CancelRequested, LlmTextDelta, UserMessageReceived
from tests.support.recorded_session import SessionDriver, record_session
from transcripts import TranscriptRecorder, TranscriptStore
from transcripts.exchanges import exchanges
from transcripts.timeline import Turn, timeline


def recorded_turns(tmp_path: Path, script: str) -> list[Turn]:
    ticks = itertools.count()
    path = tmp_path / "t.db"
    with TranscriptRecorder(path, clock=lambda: float(next(ticks))) as recorder:
        if script == "two turns":
            record_session(recorder, "s")
        else:
            driver = SessionDriver.start(recorder, "s")
            driver.feed(UserMessageReceived("go"))
            driver.feed(LlmTextDelta("t1.1", "thinking"))
            driver.feed(UserMessageReceived("typed while busy"))
            driver.feed(CancelRequested())
    store = TranscriptStore.open(path)
    return timeline(exchanges(store.events("s")))


def test_each_model_request_is_a_step_with_its_tool_calls_and_first_output(
    tmp_path: Path,
) -> None:
    turns = recorded_turns(tmp_path, "two turns")
    assert [(turn.number, turn.message, turn.outcome) for turn in turns] == [
        (1, "What does the README say?", "ok"),
        (2, "And again?", "ok"),
    ]
    first = turns[0]
    assert [[span.label for span in step.spans] for step in first.steps] == [
        ["model t1.1", "read_file c1"],
        ["model t1.2"],
    ]
    model, tool = first.steps[0].spans
    assert model.start == first.start + 1  # the request went out right after the message
    assert model.start < model.first_output < model.end <= tool.start < tool.end  # type: ignore[operator]
    assert (model.outcome, tool.outcome) == ("ok", "ok")
    assert model.detail == "tool_calls; 50 prompt, 12 completion tokens"
    assert first.end == first.steps[-1].model.end + 1  # the answer is emitted after the end
    late = turns[1].steps[0].model
    assert late.first_output is not None and late.first_output < turns[1].end


def test_a_cancel_closes_the_open_request_and_a_refused_message_starts_no_turn(
    tmp_path: Path,
) -> None:
    (turn,) = recorded_turns(tmp_path, "cancelled")
    assert turn.message == "go" and turn.outcome == "cancelled"
    (step,) = turn.steps
    # clock ticks: message 1, its outputs 2, chunk 3/4, refused message 5/6, cancel 7/8
    assert (turn.start, step.model.start, step.model.first_output) == (1.0, 2.0, 3.0)
    assert (step.model.outcome, step.model.end, turn.end) == ("cancelled", 7.0, 8.0)
    assert step.tools == []
