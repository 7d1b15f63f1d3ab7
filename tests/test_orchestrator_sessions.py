"""The orchestrator's session layer in one process: endpoint, registry and runtime.

Each IDE connection is a `ClientEndpoint` over an `Attachment`; here the attachment
keeps what it is sent, and the model is a real HTTP server speaking OpenAI's SSE
(`FakeUpstream`), so the runtime's LLM client, timers and history run as in the service.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from orchestrator.core import CoreConfig
from orchestrator.endpoint import ClientEndpoint
from orchestrator.llm_client import LlmClient, LlmSettings
from orchestrator.recording import NullRecorder
from orchestrator.sessions import SessionLimitReached, SessionLimits, SessionRegistry
from tests.support.fake_upstream import FAKE_MODEL, FakeUpstream, text_stream, tool_call_stream


class RecordingAttachment:
    """An IDE connection that reads at once and keeps every frame."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None

    def send(self, text: str) -> None:
        self.frames.append(json.loads(text))

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    @property
    def backlog(self) -> int:
        return 0

    def notify_when_drained(self, callback: Callable[[], None]) -> None:
        callback()

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [frame for frame in self.frames if frame["type"] == kind]


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        server.script = lambda request: text_stream("Hello there, friend")
        yield server


def _registry(upstream: FakeUpstream, **limits: Any) -> SessionRegistry:
    llm = LlmClient(LlmSettings(base_url=upstream.base_url, model=FAKE_MODEL))
    config = CoreConfig(tool_timeout_s=0.2)
    return SessionRegistry(config, llm, NullRecorder(), SessionLimits(**limits))


async def _until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.01)


def _hello(**fields: Any) -> str:
    return json.dumps({"type": "hello", "protocol": 1, **fields})


def _connect(registry: SessionRegistry, principal: str = "p1") -> tuple[ClientEndpoint, Any]:
    attachment = RecordingAttachment()
    return ClientEndpoint(registry, principal, attachment), attachment


async def test_endpoint_refuses_every_frame_before_hello(upstream: FakeUpstream) -> None:
    endpoint, ide = _connect(_registry(upstream))
    endpoint.handle_frame(json.dumps({"type": "user_message", "content": "hi", "id": "m1"}))
    endpoint.handle_frame("{not json")
    endpoint.handle_frame(json.dumps({"type": "hello", "protocol": "one"}))
    endpoint.handle_frame(b"\x00")
    codes = [frame["code"] for frame in ide.of_type("error")]
    assert codes == ["hello_required", "invalid_json", "invalid_frame", "invalid_frame"]
    assert ide.of_type("error")[0]["id"] == "m1"
    assert "protocol" in ide.of_type("error")[2]["message"]
    assert endpoint.session is None


async def test_endpoint_opens_a_session_and_refuses_a_second_hello(upstream: FakeUpstream) -> None:
    registry = _registry(upstream)
    endpoint, ide = _connect(registry)
    endpoint.handle_frame(_hello())
    endpoint.handle_frame(_hello(id="h2"))
    (session,) = ide.of_type("session")
    assert session["resumed"] is False and session["state"] == "idle"
    assert registry.get(session["session_id"]) is endpoint.session
    (error,) = ide.of_type("error")
    assert (error["code"], error["id"]) == ("invalid_frame", "h2")


async def test_runtime_streams_a_turn_from_the_model_to_the_ide(upstream: FakeUpstream) -> None:
    endpoint, ide = _connect(_registry(upstream))
    endpoint.handle_frame(_hello())
    endpoint.handle_frame(json.dumps({"type": "user_message", "content": "hi"}))
    await _until(lambda: bool(ide.of_type("agent_message")))
    (message,) = ide.of_type("agent_message")
    assert message["content"] == "Hello there, friend"
    assert "".join(frame["text"] for frame in ide.of_type("agent_delta")) == message["content"]
    states = [frame["state"] for frame in ide.of_type("state")]
    assert states == ["streaming", "done"]
    seqs = [frame["seq"] for frame in ide.frames if "seq" in frame]
    assert seqs == list(range(1, len(seqs) + 1))
    assert upstream.requests[0].json["messages"][-1] == {"role": "user", "content": "hi"}


async def test_runtime_times_a_tool_call_out_when_the_ide_never_answers(
    upstream: FakeUpstream,
) -> None:
    upstream.script = lambda request: (
        tool_call_stream([("read_file", '{"path": "a.py"}')])
        if request["messages"][-1]["role"] == "user"
        else text_stream("It timed out.")
    )
    endpoint, ide = _connect(_registry(upstream))
    endpoint.handle_frame(_hello())
    endpoint.handle_frame(json.dumps({"type": "user_message", "content": "read a.py"}))
    await _until(lambda: bool(ide.of_type("agent_message")))
    (call,) = ide.of_type("tool_call")
    assert call["tool"] == "read_file"
    tool_messages = [m for m in upstream.requests[1].json["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == [call["call_id"]]
    assert json.loads(tool_messages[0]["content"])["error"]["code"] == "timeout"


async def test_resume_sends_what_the_ide_missed_and_tells_the_old_connection(
    upstream: FakeUpstream,
) -> None:
    registry = _registry(upstream)
    first, old_ide = _connect(registry)
    first.handle_frame(_hello())
    first.handle_frame(json.dumps({"type": "user_message", "content": "hi"}))
    await _until(lambda: bool(old_ide.of_type("agent_message")))
    session_id = old_ide.of_type("session")[0]["session_id"]
    again, new_ide = _connect(registry)
    again.handle_frame(_hello(session_id=session_id, last_seq=2))
    assert new_ide.frames[0]["type"] == "session" and new_ide.frames[0]["resumed"] is True
    assert [frame["seq"] for frame in new_ide.frames[1:]] == [
        frame["seq"] for frame in old_ide.frames if frame.get("seq", 0) > 2
    ]
    assert old_ide.of_type("error")[-1]["code"] == "session_taken_over"
    assert old_ide.closed == (4001, "session taken over")


async def test_resume_is_refused_for_another_token_and_for_an_unknown_session(
    upstream: FakeUpstream,
) -> None:
    registry = _registry(upstream)
    owner, ide = _connect(registry, "owner")
    owner.handle_frame(_hello())
    session_id = ide.of_type("session")[0]["session_id"]
    for principal, wanted in (("intruder", session_id), ("owner", "s_0000000000000000")):
        endpoint, other = _connect(registry, principal)
        endpoint.handle_frame(_hello(session_id=wanted))
        assert [frame["code"] for frame in other.of_type("error")] == ["unknown_session"]
        assert endpoint.session is None


async def test_registry_holds_each_token_to_its_session_limit(upstream: FakeUpstream) -> None:
    registry = _registry(upstream, max_sessions=3, max_sessions_per_principal=2)
    registry.create("a")
    registry.create("a")
    with pytest.raises(SessionLimitReached, match="this token already holds 2 sessions"):
        registry.create("a")
    registry.create("b")
    with pytest.raises(SessionLimitReached, match="this orchestrator holds 3 sessions"):
        registry.create("c")
    endpoint, ide = _connect(registry, "c")
    endpoint.handle_frame(_hello(id="h1"))
    assert [(f["code"], f["id"]) for f in ide.of_type("error")] == [("session_limit", "h1")]


async def test_registry_frees_a_detached_session_after_its_grace_period(
    upstream: FakeUpstream,
) -> None:
    registry = _registry(upstream, grace_period_s=0.05)
    kept, kept_ide = _connect(registry)
    kept.handle_frame(_hello())
    left, left_ide = _connect(registry)
    left.handle_frame(_hello())
    left.close()
    gone = left_ide.of_type("session")[0]["session_id"]
    await _until(lambda: registry.get(gone) is None)
    assert len(registry) == 1
    assert registry.get(kept_ide.of_type("session")[0]["session_id"]) is kept.session


async def test_registry_keeps_a_session_resumed_within_its_grace_period(
    upstream: FakeUpstream,
) -> None:
    registry = _registry(upstream, grace_period_s=0.2)
    left, ide = _connect(registry)
    left.handle_frame(_hello())
    left.close()
    session_id = ide.of_type("session")[0]["session_id"]
    again, _ = _connect(registry)
    again.handle_frame(_hello(session_id=session_id))
    await asyncio.sleep(0.4)
    assert registry.get(session_id) is again.session
