"""Faults over real processes: dropped connections, resume, takeover, restarts, cut streams,
slow readers. After each, the servers are up, the session works, and no event is lost or
duplicated (checked by seq)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from agent_service.stack import ServiceStack, StackConfig
from tests.support.fake_upstream import (
    Cut,
    FakeUpstream,
    Step,
    paced,
    text_stream,
    tool_call_stream,
    upstream_answered,
)
from tests.support.stack import running_stack
from tests.support.wsclient import Frame, ProtocolClient, numbered, state_is

GRACE_PERIOD_S = 1.5


@pytest.fixture(scope="module")
def stack(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StackConfig]:
    with running_stack(
        tmp_path_factory.mktemp("reliability"),
        llm_base_url=upstream.base_url,
        model="fake-model",
        # 80 MB answers below are about backpressure, not the turn's output budget
        extra_args={
            "orchestrator": ["--grace-period", str(GRACE_PERIOD_S), "--max-turn-output", "0"],
            # a client below holds still while 80 MB are streamed, however long that takes
            "gateway": ["--client-send-timeout", "300"],
        },
    ) as config:
        yield config


def unique_by_seq(frames: list[Frame]) -> list[Frame]:
    """Numbered frames, each seq once (a resume may send a pending tool_call again)."""
    seen: dict[int, Frame] = {}
    for frame in numbered(frames):
        if frame["seq"] in seen:
            assert seen[frame["seq"]] == frame, "a seq was reused for a different event"
        seen[frame["seq"]] = frame
    return [seen[seq] for seq in sorted(seen)]


def assert_no_gap(frames: list[Frame]) -> None:
    seqs = [frame["seq"] for frame in unique_by_seq(frames)]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_resume_after_a_drop_mid_stream_delivers_every_missed_event(
    stack: StackConfig, upstream: FakeUpstream
) -> None:
    text = "one two three four five six seven eight nine ten eleven twelve"
    upstream.reset(lambda request: paced(text_stream(text), 0.05))
    first = await ProtocolClient.connect(stack.gateway_url, stack.token)
    session = await first.hello()
    await first.send({"type": "user_message", "content": "count", "id": "m1"})
    await first.receive_until(lambda frame: frame["type"] == "agent_delta" and frame["seq"] >= 4)
    await first.close()
    last_seq = max(frame["seq"] for frame in numbered(first.received))

    second = await ProtocolClient.connect(stack.gateway_url, stack.token)
    resumed = await second.hello(session["session_id"], last_seq)
    assert resumed["resumed"] is True and resumed["session_id"] == session["session_id"]
    await second.receive_until(state_is("done"))
    await second.close()

    frames = first.received + second.received
    assert_no_gap(frames)
    deltas = "".join(f["text"] for f in unique_by_seq(frames) if f["type"] == "agent_delta")
    message = next(f for f in frames if f["type"] == "agent_message")
    assert deltas == message["content"] == text


async def test_pending_tool_call_is_offered_again_after_a_drop(
    stack: StackConfig, upstream: FakeUpstream
) -> None:
    def script(request: dict[str, Any]) -> list[Step]:
        if request["messages"][-1]["role"] == "tool":
            return text_stream("Read it.")
        return tool_call_stream([("read_file", '{"path": "a.txt"}')])

    upstream.reset(script)
    first = await ProtocolClient.connect(stack.gateway_url, stack.token)
    session = await first.hello()
    await first.send({"type": "user_message", "content": "read a.txt"})
    call = await first.receive_until(lambda frame: frame["type"] == "tool_call")
    await first.receive_until(state_is("awaiting_tool"))
    last_seq = max(frame["seq"] for frame in numbered(first.received))
    await first.close()

    second = await ProtocolClient.connect(stack.gateway_url, stack.token)
    await second.hello(session["session_id"], last_seq)
    offered = await second.receive()
    assert offered == call
    await second.send(
        {"type": "tool_result", "call_id": call["call_id"], "ok": True, "output": {"content": "x"}}
    )
    await second.receive_until(state_is("done"))
    await second.close()
    assert_no_gap(first.received + second.received)


async def test_second_connection_takes_the_session_over_and_the_first_is_closed(
    stack: StackConfig,
) -> None:
    first = await ProtocolClient.connect(stack.gateway_url, stack.token)
    session = await first.hello()
    second = await ProtocolClient.connect(stack.gateway_url, stack.token)
    await second.hello(session["session_id"], 0)
    notice = await first.receive()
    assert notice["type"] == "error" and notice["code"] == "session_taken_over"
    assert notice["fatal"] is True
    with pytest.raises(ConnectionClosed) as closed:
        await first.receive()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
    await second.close()


async def test_resuming_an_unknown_session_gets_a_clear_error_and_the_connection_goes_on(
    stack: StackConfig,
) -> None:
    client = await ProtocolClient.connect(stack.gateway_url, stack.token)
    await client.send({"type": "hello", "protocol": 1, "session_id": "s_nope", "id": "h1"})
    refused = await client.receive()
    assert refused["type"] == "error" and refused["code"] == "unknown_session"
    assert refused["id"] == "h1" and refused["source"] == "protocol"
    fresh = await client.hello()
    assert fresh["resumed"] is False
    await client.close()


async def test_session_expires_after_the_grace_period_without_a_connection(
    stack: StackConfig,
) -> None:
    client = await ProtocolClient.connect(stack.gateway_url, stack.token)
    session = await client.hello()
    await client.close()
    await asyncio.sleep(GRACE_PERIOD_S + 1.0)
    late = await ProtocolClient.connect(stack.gateway_url, stack.token)
    await late.send({"type": "hello", "protocol": 1, "session_id": session["session_id"]})
    refused = await late.receive()
    assert refused["code"] == "unknown_session"
    await late.close()


async def test_stream_cut_by_the_upstream_is_an_error_and_the_session_goes_on(
    stack: StackConfig, upstream: FakeUpstream
) -> None:
    steps = text_stream("this answer will never be finished by the upstream")
    upstream.reset(lambda request: [*steps[:4], Cut()])
    client = await ProtocolClient.connect(stack.gateway_url, stack.token)
    await client.hello()
    first = await client.run_turn("talk", message_id="m1")
    error = next(frame for frame in first if frame["type"] == "error")
    assert error["source"] == "llm" and error["fatal"] is False
    assert error["code"] in {"llm_truncated", "llm_upstream_error"}
    assert [f["state"] for f in first if f["type"] == "state"] == ["streaming", "error"]
    assert not [frame for frame in first if frame["type"] == "agent_message"]

    upstream.reset(lambda request: text_stream("Back again."))
    second = await client.run_turn("again", message_id="m2")
    assert next(f for f in second if f["type"] == "agent_message")["content"] == "Back again."
    history = upstream.requests[-1].json["messages"]
    assert [m["role"] for m in history[-3:]] == ["user", "assistant", "user"]
    await client.close()
    assert_no_gap(client.received)


async def test_client_that_stops_reading_gets_merged_deltas_and_loses_nothing(
    stack: StackConfig, upstream: FakeUpstream
) -> None:
    # 80 MB of text: more than every socket buffer between orchestrator and client holds
    # (the client's own receive buffer is pinned small, like a stalled IDE's).
    words = [f"{index:03d}" + "x" * 1_000_000 + " " for index in range(80)]
    upstream.reset(lambda request: text_stream("".join(words)))
    sock = socket.create_connection(("127.0.0.1", stack.gateway_port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    headers = {"Authorization": f"Bearer {stack.token}"}
    client = ProtocolClient(
        await connect(stack.gateway_url, sock=sock, additional_headers=headers, max_size=None)
    )
    await client.hello()
    await client.send({"type": "user_message", "content": "flood"})
    # Read nothing until the upstream has written the whole answer, however slowly a busy
    # machine streams it: a fixed pause could end before the buffers on the way were full,
    # and then nothing had to be held back and merged.
    assert await upstream_answered(upstream, timeout=240)
    await client.receive_until(state_is("done"), timeout=120)
    await client.close()
    deltas = [frame for frame in client.received if frame["type"] == "agent_delta"]
    message = next(frame for frame in client.received if frame["type"] == "agent_message")
    assert "".join(frame["text"] for frame in deltas) == message["content"] == "".join(words)
    assert len(deltas) < len(words), "deltas were not merged while the client was behind"
    assert_no_gap(client.received)


async def test_hostile_frames_get_errors_and_the_session_survives(stack: StackConfig) -> None:
    client = await ProtocolClient.connect(stack.gateway_url, stack.token)
    session = await client.hello()
    hostile: list[tuple[str | bytes, str]] = [
        ("{", "invalid_json"),
        ("[1, 2]", "invalid_frame"),
        (json.dumps({"type": "user_message", "content": 7, "id": "bad"}), "invalid_frame"),
        (json.dumps({"type": "nope"}), "invalid_frame"),
        (json.dumps({"type": "tool_result", "call_id": "c999", "ok": True}), "unknown_call_id"),
        (json.dumps({"type": "cancel"}), "nothing_to_cancel"),
        (json.dumps({"type": "hello", "protocol": 1}), "invalid_frame"),
        (b"\x00\x01binary", "invalid_frame"),
        ("x" * (5 * 1024 * 1024), "too_large"),
    ]
    for frame, code in hostile:
        await client.connection.send(frame)
        reply = await client.receive()
        assert reply["type"] == "error" and reply["code"] == code, (frame[:60], reply)
        assert reply["source"] == "protocol" and reply["fatal"] is False
    bad_id = json.dumps({"type": "user_message", "content": 7, "id": "bad"})
    await client.connection.send(bad_id)
    assert (await client.receive())["id"] == "bad"
    await client.close()
    again = await ProtocolClient.connect(stack.gateway_url, stack.token)
    assert (await again.hello(session["session_id"], 0))["resumed"] is True
    await again.close()


async def test_invalid_utf8_closes_the_connection_and_the_session_can_be_resumed(
    stack: StackConfig,
) -> None:
    client = await ProtocolClient.connect(stack.gateway_url, stack.token)
    session = await client.hello()
    await client.connection.send(b'{"type": "cancel", "id": "\xff\xfe"}', text=True)
    with pytest.raises(ConnectionClosed):
        await client.receive()
    again = await ProtocolClient.connect(stack.gateway_url, stack.token)
    assert (await again.hello(session["session_id"], 0))["resumed"] is True
    await again.close()


# it starts the replacement gateway of the three-process stack by hand (on a broker, resuming
# through another gateway and a killed one are tests of test_e2e_broker*.py)
@pytest.mark.single_machine
async def test_ide_resumes_through_a_new_gateway_process(tmp_path: Path) -> None:
    with (
        FakeUpstream(lambda request: text_stream("Hi there.")) as fake,
        running_stack(tmp_path, llm_base_url=fake.base_url, model="fake-model") as config,
    ):
        client = await ProtocolClient.connect(config.gateway_url, config.token)
        session = await client.hello()
        await client.run_turn("hello", message_id="m1")
        gateway = ServiceStack(config, output=(tmp_path / "gateway2.log").open("ab"))
        restart_gateway(config, gateway)
        with pytest.raises(ConnectionClosed):
            await client.receive(timeout=10)
        last_seq = max(frame["seq"] for frame in numbered(client.received))
        again = await ProtocolClient.connect(config.gateway_url, config.token)
        resumed = await again.hello(session["session_id"], last_seq)
        assert resumed["resumed"] is True and resumed["last_seq"] == last_seq
        await again.run_turn("again", message_id="m2")
        await again.close()
        assert gateway.stop() == {"gateway": 0}
        assert_no_gap(client.received + again.received)


def restart_gateway(config: StackConfig, replacement: ServiceStack) -> None:
    """SIGTERM the running gateway (found by its listening port) and start another on that port."""
    listeners = subprocess.run(
        ["fuser", "-k", "-TERM", f"{config.gateway_port}/tcp"], capture_output=True, text=True
    )
    assert listeners.stdout.split(), "no gateway process found on its port"
    for _ in range(100):
        if subprocess.run(["fuser", f"{config.gateway_port}/tcp"], capture_output=True).returncode:
            break
        time.sleep(0.1)
    replacement.start(services=("gateway",))


async def reconnect_after_restart(client: ProtocolClient, stack: ServiceStack) -> ProtocolClient:
    """Restart the orchestrator; the old connection closes; resume on a new one."""
    assert stack.restart("orchestrator") == 0
    with pytest.raises(ConnectionClosed):
        while True:
            await client.receive(timeout=10)
    last_seq = max(frame["seq"] for frame in numbered(client.received))
    session_id = next(frame["session_id"] for frame in numbered(client.received))
    again = await ProtocolClient.connect(stack.config.gateway_url, stack.config.token)
    resumed = await again.hello(session_id, last_seq)
    assert resumed["resumed"] is True
    return again


async def test_orchestrator_restart_offers_the_pending_tool_call_again(
    recorded_stack: ServiceStack, upstream: FakeUpstream
) -> None:
    def script(request: dict[str, Any]) -> list[Step]:
        if request["messages"][-1]["role"] == "tool":
            return text_stream("Got the file.")
        return tool_call_stream([("read_file", '{"path": "a.txt"}')])

    upstream.reset(script)
    config = recorded_stack.config
    client = await ProtocolClient.connect(config.gateway_url, config.token)
    await client.hello()
    await client.send({"type": "user_message", "content": "read a.txt"})
    call = await client.receive_until(lambda frame: frame["type"] == "tool_call")
    await client.receive_until(state_is("awaiting_tool"))

    again = await reconnect_after_restart(client, recorded_stack)
    assert await again.receive() == call
    await again.send(
        {"type": "tool_result", "call_id": call["call_id"], "ok": True, "output": {"content": "x"}}
    )
    await again.receive_until(state_is("done"))
    await again.close()
    frames = client.received + again.received
    assert_no_gap(frames)
    assert next(f for f in frames if f["type"] == "agent_message")["content"] == "Got the file."


async def test_orchestrator_restart_mid_stream_ends_the_turn_in_error_and_the_session_goes_on(
    recorded_stack: ServiceStack, upstream: FakeUpstream
) -> None:
    upstream.reset(lambda request: paced(text_stream("a b c d e f g h i j k l m n o p"), 0.2))
    config = recorded_stack.config
    client = await ProtocolClient.connect(config.gateway_url, config.token)
    await client.hello()
    await client.send({"type": "user_message", "content": "talk slowly", "id": "m1"})
    await client.receive_until(lambda frame: frame["type"] == "agent_delta")

    again = await reconnect_after_restart(client, recorded_stack)
    error = await again.receive_until(lambda frame: frame["type"] == "error")
    assert error["code"] == "interrupted" and error["source"] == "llm"
    await again.receive_until(state_is("error"))
    upstream.reset(lambda request: text_stream("Fresh answer."))
    turn = await again.run_turn("go on", message_id="m2")
    assert next(f for f in turn if f["type"] == "agent_message")["content"] == "Fresh answer."
    await again.close()
    assert_no_gap(client.received + again.received)
