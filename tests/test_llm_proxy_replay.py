"""The proxy's replay backend: recorded model responses served again, keyed by the request."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import openai
import pytest

from llm_proxy.replay_match import RecordedRequests
from llm_proxy.transcript_reader import RecordedExchange, RecordedSession
from orchestrator.commands import StartLlmRequest
from orchestrator.core import CoreConfig
from orchestrator.events import (
    Event,
    LlmFailed,
    LlmStreamEnded,
    LlmTextDelta,
    LlmToolCallsCompleted,
    ModelToolCall,
    UserMessageReceived,
)
from orchestrator.llm_client import LlmClient, LlmSettings
from tests.support.procs import ROOT
from tests.support.proxy_process import running_proxy
from transcripts import TranscriptRecorder
from wire import OPENAI_TOOLS, LlmFailureKind

SYSTEM = {"role": "system", "content": "You are a test."}
SESSION = "s_outcomes"
SERVED = "replayed"


CALLS = (
    ModelToolCall("call_a", "read_file", '{"path": "a.py"}'),
    ModelToolCall("call_b", "git_diff", ""),
)
# What each recorded request's stream fed the session, one case per request (ids set per case).
StreamEvent = LlmTextDelta | LlmToolCallsCompleted | LlmStreamEnded | LlmFailed
OUTCOMES: list[list[StreamEvent]] = [
    [
        LlmTextDelta("", "Reading "),
        LlmTextDelta("", "two things."),
        LlmToolCallsCompleted("", CALLS),
        LlmStreamEnded("", "tool_calls", prompt_tokens=31, completion_tokens=7),
    ],
    [
        LlmFailed(
            "",
            "llm_rate_limited",
            "LLM endpoint answered 429: slow down",
            LlmFailureKind.STATUS,
            429,
            "slow down",
        )
    ],
    [
        LlmTextDelta("", "Half an answer"),
        LlmFailed(
            "",
            "llm_upstream_error",
            "the model failed mid-stream: overloaded",
            LlmFailureKind.STREAM_ERROR,
            detail="overloaded",
        ),
    ],
    [
        LlmTextDelta("", "Cut short"),
        LlmFailed(
            "",
            "llm_truncated",
            "the model's stream ended before it was complete ([DONE] never came)",
            LlmFailureKind.NO_DONE,
        ),
    ],
    [
        LlmFailed(
            "",
            "llm_bad_response",
            "the model sent a chunk that is not JSON",
            LlmFailureKind.NOT_JSON,
        )
    ],
    [
        LlmTextDelta("", "Half"),
        LlmFailed(
            "",
            "llm_bad_response",
            "the model sent a chunk that is not an object",
            LlmFailureKind.NOT_AN_OBJECT,
        ),
    ],
]


def record_outcomes(db: Path) -> list[tuple[StartLlmRequest, list[StreamEvent]]]:
    """A transcript with one request per outcome, recorded as the runtime records them."""
    recorder = TranscriptRecorder(db)
    recorder.session_started(SESSION, CoreConfig(), "recorded-model")
    cases = []
    for number, outcome in enumerate(OUTCOMES, start=1):
        user = {"role": "user", "content": f"case {number}"}
        start = StartLlmRequest(f"t{number}.1", (SYSTEM, user), OPENAI_TOOLS)
        events = [replace(event, request_id=start.request_id) for event in outcome]
        recorder.record_input(SESSION, UserMessageReceived(user["content"]))
        recorder.record_outputs(SESSION, [start])
        for event in events:
            recorder.record_input(SESSION, event)
            recorder.record_outputs(SESSION, [])
        cases.append((start, events))
    recorder.close()
    return cases


def text_merged(events: list[Event] | list[StreamEvent]) -> list[Event]:
    """The events with each run of text deltas as one: the client merges the text of the
    chunks that one network read brings, and the replay writes its chunks at once."""
    merged: list[Event] = []
    for event in events:
        previous = merged[-1] if merged else None
        if isinstance(event, LlmTextDelta) and isinstance(previous, LlmTextDelta):
            merged[-1] = replace(previous, text=previous.text + event.text)
        else:
            merged.append(event)
    return merged


async def test_orchestrator_client_gets_every_recorded_outcome_back_from_a_routes_file_replay(
    tmp_path: Path,
) -> None:
    cases = record_outcomes(tmp_path / "outcomes.db")
    routes = f"""
[models.{SERVED}]
upstreams = [{{ backend = "replay", db = "outcomes.db", session = "{SESSION}" }}]
"""
    with running_proxy(tmp_path, routes=routes) as proxy:
        client = LlmClient(LlmSettings(base_url=proxy.base_url, model=SERVED))
        try:
            for start, recorded in cases:
                fed: list[Event] = []
                await client.stream(start, fed.append)
                assert text_merged(fed) == text_merged(recorded), start.request_id
        finally:
            await client.close()

        sdk = openai.AsyncOpenAI(base_url=proxy.base_url, api_key="unused", max_retries=0)
        first, _ = cases[0]
        completion = await sdk.chat.completions.create(
            model=SERVED, messages=list(first.messages), tools=list(first.tools)
        )
        await sdk.close()

    choice = completion.choices[0]
    assert choice.message.content == "Reading two things."
    assert [
        (call.id, call.function.name, call.function.arguments)
        for call in choice.message.tool_calls or []
    ] == [(call.id, call.name, call.arguments) for call in CALLS]
    assert choice.finish_reason == "tool_calls"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (31, 7)


def exchange(request_id: str, *contents: str) -> RecordedExchange:
    messages = [SYSTEM, *({"role": "user", "content": text} for text in contents)]
    return RecordedExchange(request_id, messages, list(OPENAI_TOOLS), [])


RECORDED = RecordedSession(
    SESSION, "m", (exchange("t1.1", "first"), exchange("t2.1", "first", "second"))
)


@pytest.mark.parametrize(
    ("messages", "tools", "nearest", "where", "says"),
    [
        (
            [SYSTEM, {"role": "user", "content": "first"}, {"role": "user", "content": "2nd"}],
            list(OPENAI_TOOLS),
            "t2.1",
            "messages[2].content",
            'expected "second" got "2nd"',
        ),
        (
            [SYSTEM, {"role": "user", "content": "first"}, {"role": "assistant", "content": "x"}],
            list(OPENAI_TOOLS),
            "t2.1",
            "messages[2].role",
            'expected "user" got "assistant"',
        ),
        (
            [SYSTEM, *(({"role": "user", "content": text}) for text in ("first", "second", "3"))],
            list(OPENAI_TOOLS),
            "t2.1",
            "messages[3]",
            "not in the recording, which has 3 items",
        ),
        (
            [SYSTEM, {"role": "user", "content": "first"}],
            list(OPENAI_TOOLS)[:-1],
            "t1.1",
            f"tools[{len(OPENAI_TOOLS) - 1}]",
            f"missing: the request has {len(OPENAI_TOOLS) - 1} items",
        ),
    ],
)
def test_replay_names_where_a_request_differs_from_the_nearest_recorded_one(
    messages: list[dict[str, Any]], tools: list[Any], nearest: str, where: str, says: str
) -> None:
    requests = RecordedRequests(RECORDED)
    asked = {"messages": messages, "tools": tools}

    assert requests.find(asked) is None
    miss = requests.explain_miss(asked)
    assert miss is not None
    found, difference = miss
    assert found.request_id == nearest
    assert difference.path == where
    assert says in difference.detail


def test_llm_proxy_exits_2_naming_the_session_a_replay_database_lacks(tmp_path: Path) -> None:
    record_outcomes(tmp_path / "outcomes.db")

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent_service",
            "llm-proxy",
            "--replay",
            str(tmp_path / "outcomes.db"),
            "--replay-session",
            "s_missing",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "no session 's_missing'" in result.stderr
