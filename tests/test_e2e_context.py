"""The context budget and output limits over the real services, against a fake upstream that
enforces a small context window the way OpenAI does (400 `context_length_exceeded`)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.context import COMPACTION_PROMPT
from tests.support.fake_upstream import (
    FakeUpstream,
    Step,
    capped_endless_text,
    endless_text,
    error_reply,
    text_stream,
    tool_call_stream,
    windowed,
)
from tests.support.stack import running_stack
from tests.support.wsclient import Frame, ProtocolClient

WINDOW = 4096
MAX_TOKENS = 256
FILE_CHARS = 4000


def is_compaction(request: dict[str, Any]) -> bool:
    return request["messages"][0]["content"] == COMPACTION_PROMPT


def file_reader(request: dict[str, Any], tokens: int) -> Iterable[Step]:
    """A model that reads the file the user names, then says so; it summarises when asked."""
    if is_compaction(request):
        return text_stream("Files were read one by one at the user's request.", usage=(tokens, 9))
    last = request["messages"][-1]
    if last["role"] == "user":
        path = last["content"].split()[-1]
        return tool_call_stream([("read_file", json.dumps({"path": path}))], usage=(tokens, 8))
    return text_stream("Read it.", usage=(tokens, 3))


async def read_file(frame: Frame) -> Frame:
    path = frame["arguments"]["path"]
    content = (f"// {path}\n" + "x" * FILE_CHARS)[:FILE_CHARS]
    return {
        "type": "tool_result",
        "call_id": frame["call_id"],
        "ok": True,
        "output": {"content": content},
    }


def context_args(*extra: str) -> list[str]:
    return ["--context-window", str(WINDOW), "--max-tokens", str(MAX_TOKENS), *extra]


def agent_message(frames: list[Frame]) -> Frame:
    return next(frame for frame in frames if frame["type"] == "agent_message")


async def open_session(config: Any) -> ProtocolClient:
    client = await ProtocolClient.connect(config.gateway_url, config.token)
    await client.hello()
    return client


# it verifies the replay of the transcripts file as well
@pytest.mark.single_machine
async def test_a_session_reading_file_after_file_keeps_working_for_55_turns(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    overflows: list[int] = []
    upstream.reset(windowed(WINDOW, file_reader, overflows=overflows))
    db = tmp_path / "t.db"
    extra = {"orchestrator": ["--transcripts", str(db), *context_args()]}
    with running_stack(
        tmp_path, llm_base_url=upstream.base_url, model="fake-model", extra_args=extra
    ) as config:
        client = await open_session(config)
        for turn in range(1, 56):
            frames = await client.run_turn(f"Read src/file{turn}.js", read_file, f"m{turn}")
            assert agent_message(frames)["content"] == "Read it.", frames[-3:]
        await client.close()

    requests = [r.json for r in upstream.requests]
    assert not overflows
    assert any("output elided to fit the context window" in json.dumps(r) for r in requests)
    assert sum(1 for r in requests if is_compaction(r)) >= 1
    contexts = [f for f in client.received if f["type"] == "context"]
    assert len(contexts) == 110
    assert all(f["tokens"] <= WINDOW - MAX_TOKENS and f["window"] == WINDOW for f in contexts)
    assert contexts[-1]["compactions"] >= 1 and any(f["compacted"] for f in contexts)
    assert contexts[-1]["session_usage"]["prompt_tokens"] > 0
    assert not contexts[-1]["session_usage"]["estimated"]
    verified = subprocess.run(
        [sys.executable, "-m", "agent_service", "replay", "--all", "--verify", "--db", str(db)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


def chatty(request: dict[str, Any], tokens: int) -> Iterable[Step]:
    if is_compaction(request):
        return text_stream("The user sent long notes.", usage=(tokens, 5))
    return text_stream("Noted.", usage=(tokens, 2))


async def test_an_overflow_is_compacted_once_and_retried(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    # The upstream counts two characters a token: more than the orchestrator estimates.
    overflows: list[int] = []
    upstream.reset(windowed(WINDOW, chatty, chars_per_token=2.0, overflows=overflows))
    extra = {"orchestrator": context_args()}
    with running_stack(
        tmp_path, llm_base_url=upstream.base_url, model="fake-model", extra_args=extra
    ) as config:
        client = await open_session(config)
        note = "note " * 400
        turns = []
        while not overflows:
            turns.append(await client.run_turn(f"{note} {len(turns)}", None, f"m{len(turns)}"))
            assert len(turns) < 20
        after = await client.run_turn("One more.", None, "m99")
        await client.close()

    overflowed = turns[-1]
    assert len(overflows) == 1
    assert agent_message(overflowed)["content"] == "Noted."
    assert [f for f in overflowed if f["type"] == "error"] == []
    retry = [f for f in overflowed if f["type"] == "context"][-1]
    assert (retry["compactions"], retry["compacted"]) == (1, True)
    requests = [r.json for r in upstream.requests]
    failed_at = next(i for i, r in enumerate(requests) if i > 0 and is_compaction(r))
    assert not is_compaction(requests[failed_at + 1])
    assert agent_message(after)["content"] == "Noted."


async def test_a_failed_compaction_drops_the_older_part_and_the_session_answers_on(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    def summary_fails(request: dict[str, Any], tokens: int) -> Iterable[Step]:
        if is_compaction(request):
            return [error_reply(500, "the summariser is down", kind="server_error")]
        return text_stream("Noted.", usage=(tokens, 2))

    upstream.reset(windowed(WINDOW, summary_fails))
    extra = {"orchestrator": context_args()}
    with running_stack(
        tmp_path, llm_base_url=upstream.base_url, model="fake-model", extra_args=extra
    ) as config:
        client = await open_session(config)
        note = "note " * 600
        frames: list[Frame] = []
        for turn in range(12):
            frames = await client.run_turn(f"{note} {turn}", None, f"m{turn}")
            assert agent_message(frames)["content"] == "Noted."
            if any(f["type"] == "error" for f in frames):
                break
        following = await client.run_turn("And now?", None, "m99")
        await client.close()

    (error,) = [f for f in frames if f["type"] == "error"]
    assert (error["code"], error["source"], error["fatal"]) == ("compaction_failed", "llm", False)
    assert agent_message(following)["content"] == "Noted."
    assert not [f for f in following if f["type"] == "error"]
    last_request = upstream.requests[-1].json["messages"]
    assert "earlier messages were dropped" in last_request[1]["content"]


async def test_output_limits_end_a_model_that_never_stops(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    extra = {
        "orchestrator": [
            *context_args("--max-turn-output", "400", "--turn-deadline", "3"),
        ]
    }
    with running_stack(
        tmp_path, llm_base_url=upstream.base_url, model="fake-model", extra_args=extra
    ) as config:
        client = await open_session(config)
        upstream.reset(lambda request: capped_endless_text(request))
        at_max_tokens = await client.run_turn("Talk.", None, "m1")
        upstream.reset(lambda request: endless_text(pause=0))
        at_budget = await client.run_turn("Talk more.", None, "m2")
        upstream.reset(lambda request: endless_text(pause=0.1))
        at_deadline = await client.run_turn("Talk slowly.", None, "m3")
        upstream.reset(lambda request: text_stream("Fine."))
        after = await client.run_turn("Stop.", None, "m4")
        await client.close()

    assert upstream.requests[0].json["max_tokens"] == MAX_TOKENS
    assert agent_message(at_max_tokens)["finish_reason"] == "length"
    assert agent_message(at_max_tokens)["content"] == "and " * MAX_TOKENS
    budget = agent_message(at_budget)
    assert budget["finish_reason"] == "output_budget"
    # the delta that crosses the budget is shown whole: a read may bring many words at once
    assert 400 * 3 < len(budget["content"]) < 400 * 3 * 4
    deadline = agent_message(at_deadline)
    assert deadline["finish_reason"] == "deadline" and deadline["content"].startswith("and ")
    for frames in (at_max_tokens, at_budget, at_deadline):
        assert [f["state"] for f in frames if f["type"] == "state"] == ["streaming", "done"]
    assert agent_message(after)["content"] == "Fine."
