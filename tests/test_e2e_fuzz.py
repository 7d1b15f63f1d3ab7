"""Hostile frames from hypothesis against the real gateway: every one gets a clear answer, the
servers stay up, and the session's numbered events stay whole (no gap, no duplicate)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from agent_service.stack import StackConfig
from tests.support.protocol_schema import assert_server_frame
from tests.support.stack import running_stack

EXAMPLES = 120
TYPES = ["hello", "user_message", "tool_result", "cancel", "session", "state", "error", "", "x"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
protocol_like = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES)},
    optional={
        "id": json_values,
        "content": json_values,
        "call_id": json_values,
        "ok": json_values,
        "output": json_values,
        "error": json_values,
        "protocol": json_values,
        "session_id": json_values,
        "last_seq": json_values,
    },
)
hostile_frame = st.one_of(
    protocol_like.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=60),
    st.binary(max_size=60),
    st.builds(
        lambda n: json.dumps({"type": "user_message", "content": "x" * n}), st.integers(0, 300_000)
    ),
    st.binary(min_size=1, max_size=40)
    .map(lambda raw: b"\xff" + raw)
    .map(lambda raw: ("utf8", raw)),
)


class FuzzSession:
    """One session kept across examples; every connection resumes it."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.session_id: str | None = None
        self.seen: dict[int, dict[str, Any]] = {}
        self.frames_sent = 0
        self.connections_closed = 0
        self.probe = 0

    async def open(self) -> ClientConnection:
        headers = {"Authorization": f"Bearer {self.config.token}"}
        ws = await connect(
            self.config.gateway_url, additional_headers=headers, max_size=None, close_timeout=1
        )
        hello: dict[str, Any] = {"type": "hello", "protocol": 1}
        if self.session_id is not None:
            hello.update(session_id=self.session_id, last_seq=max(self.seen, default=0))
        await ws.send(json.dumps(hello))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert_server_frame(reply)
        assert reply["type"] == "session", reply
        self.session_id = reply["session_id"]
        return ws

    def take(self, frame: dict[str, Any]) -> None:
        assert_server_frame(frame)
        if "seq" in frame:
            seq = frame["seq"]
            assert seq not in self.seen or self.seen[seq] == frame, "seq reused"
            self.seen[seq] = frame
        else:
            assert frame["type"] == "error" and frame["source"] == "protocol", frame

    async def play(self, frames: list[Any]) -> None:
        ws = await self.open()
        try:
            for frame in frames:
                self.frames_sent += 1
                if isinstance(frame, tuple):
                    await ws.send(frame[1], text=True)
                    await self._expect_close(ws)
                    return
                await ws.send(frame)
            self.probe += 1
            probe_id = f"probe-{self.probe}"
            probe = {"type": "tool_result", "call_id": "never-issued", "ok": True, "id": probe_id}
            await ws.send(json.dumps(probe))
            while True:
                reply = json.loads(await asyncio.wait_for(ws.recv(), 20))
                self.take(reply)
                if reply.get("id") == probe_id:
                    assert reply["code"] == "unknown_call_id"
                    return
        finally:
            await ws.close()

    async def _expect_close(self, ws: ClientConnection) -> None:
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                self.take(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
        self.connections_closed += 1


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzSession]:
    # Long messages are refused (too_large) so the fuzzed session's history stays small.
    with running_stack(
        tmp_path_factory.mktemp("fuzz"), extra_args={"orchestrator": ["--max-user-message", "2000"]}
    ) as config:
        session = FuzzSession(config)
        yield session
        seqs = sorted(session.seen)
        assert seqs == list(range(1, len(seqs) + 1)), "a numbered event was lost"
        print(
            f"\nfuzz: {session.frames_sent} hostile frames, {session.connections_closed} "
            f"connections closed (1007), {len(seqs)} numbered events, none lost"
        )


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(frames=st.lists(hostile_frame, min_size=1, max_size=4))
def test_hostile_frames_get_answers_and_lose_no_event(fuzz: FuzzSession, frames: list[Any]) -> None:
    asyncio.run(fuzz.play(frames))


def test_fuzzed_session_still_runs_a_turn(fuzz: FuzzSession) -> None:
    async def turn() -> str:
        ws = await fuzz.open()
        await ws.send(json.dumps({"type": "user_message", "content": "still there?"}))
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 20))
            fuzz.take(frame)
            if frame["type"] == "agent_message":
                await ws.close()
                return str(frame["content"])
            if frame["type"] == "error" and frame.get("code") == "busy":
                await asyncio.sleep(0.2)
                await ws.send(json.dumps({"type": "user_message", "content": "still there?"}))

    assert "demo model" in asyncio.run(turn())
    assert fuzz.frames_sent >= EXAMPLES
