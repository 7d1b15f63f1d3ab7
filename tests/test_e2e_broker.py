"""Two gateways and three orchestrators on a real nats-server: sessions spread, resume through
any gateway, move to another orchestrator when their owner dies, and keep every seq."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from websockets.exceptions import ConnectionClosed

from agent_service.local_nats import LocalNats, running_nats
from tests.support.cluster import LEASE_TTL_S, Cluster, running_cluster
from tests.support.fake_upstream import (
    FakeUpstream,
    Step,
    paced,
    pieces_stream,
    text_stream,
    tool_call_stream,
)
from tests.support.procs import ServiceProcess, free_port
from tests.support.tcp_forwarder import CuttableForwarder
from tests.support.wsclient import ProtocolClient, state_is
from wire.broker import LOG_STREAM, MSG_ID, log_subject

Frame = dict[str, Any]
# A dead owner's sessions move within its lease TTL (the KV entry then expires, within a
# second more), a gateway's heartbeat check (a quarter TTL) and the rebuild from the log.
MOVE_BOUND_S = 2 * LEASE_TTL_S + 6


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[LocalNats]:
    with running_nats(tmp_path / "nats", "127.0.0.1", free_port()) as server:
        yield server


@pytest.fixture
def cluster(tmp_path: Path, nats_server: LocalNats, upstream: FakeUpstream) -> Iterator[Cluster]:
    with running_cluster(tmp_path, nats_server, upstream.base_url) as started:
        yield started


def numbered(frames: list[Frame]) -> list[int]:
    return [frame["seq"] for frame in frames if "seq" in frame]


async def connect(cluster: Cluster, gateway: int) -> ProtocolClient:
    return await ProtocolClient.connect(cluster.gateway_url(gateway), cluster.token)


async def test_sessions_spread_resume_through_the_other_gateway_and_a_leave_moves_only_its_own(
    cluster: Cluster, upstream: FakeUpstream
) -> None:
    upstream.reset(lambda request: text_stream("one two three"))
    sessions = []
    for index in range(6):
        client = await connect(cluster, index % 2)
        reply = await client.hello()
        frames = await client.run_turn(f"hi {index}")
        assert frames[-1] == {**frames[-1], "type": "state", "state": "done"}
        sessions.append((reply["session_id"], numbered(frames)[-1]))
        await client.connection.close()
    held = [cluster.sessions_of(orchestrator) for orchestrator in cluster.orchestrators]
    assert sum(held) == 6 and all(count >= 1 for count in held), held

    for index, (session_id, last_seq) in enumerate(sessions):
        client = await connect(cluster, (index + 1) % 2)
        reply = await client.hello(session_id, last_seq=0)
        assert reply["resumed"] is True and reply["last_seq"] == last_seq
        replayed = [await client.receive() for _ in range(last_seq)]
        assert numbered(replayed) == list(range(1, last_seq + 1))
        frames = await client.run_turn("again")
        assert numbered(frames)[0] == last_seq + 1
        await client.connection.close()
        sessions[index] = (session_id, numbered(frames)[-1])

    leaving = max(cluster.orchestrators, key=cluster.sessions_of)
    staying = [o for o in cluster.orchestrators if o is not leaving]
    before = [cluster.sessions_of(o) for o in staying]
    assert leaving.stop() == 0
    assert [cluster.sessions_of(o) for o in staying] == before, "a leave moved other sessions"
    for index, (session_id, last_seq) in enumerate(sessions):
        client = await connect(cluster, index % 2)
        reply = await client.hello(session_id, last_seq)
        assert reply["last_seq"] == last_seq
        await client.connection.close()
    assert sum(cluster.sessions_of(o) for o in staying) == 6


def owner_of(cluster: Cluster) -> ServiceProcess:
    """The one orchestrator that holds a session (the tests below open one)."""
    holding = [
        o
        for o in cluster.orchestrators
        if o.proc and o.proc.poll() is None and cluster.sessions_of(o) > 0
    ]
    assert len(holding) == 1, [cluster.sessions_of(o) for o in cluster.orchestrators]
    return holding[0]


async def read_until_closed(client: ProtocolClient, timeout: float) -> int:
    """Receive until the gateway closes the socket; its close code."""
    try:
        while True:
            await client.receive(timeout)
    except ConnectionClosed as closed:
        assert closed.rcvd is not None
        return closed.rcvd.code


def assert_every_seq_once(frames: list[Frame]) -> list[int]:
    """Seqs 1..n, each exactly once (a frame offered again keeps its seq and is the same)."""
    seen: dict[int, Frame] = {}
    for frame in frames:
        if "seq" in frame:
            assert seen.setdefault(frame["seq"], frame) == frame, (frame, seen[frame["seq"]])
    seqs = sorted(seen)
    assert seqs == list(range(1, len(seqs) + 1)), seqs
    return seqs


async def resume_elsewhere(
    cluster: Cluster, gateway: int, session_id: str, last_seq: int
) -> tuple[ProtocolClient, float]:
    """Resume through `gateway`; the client and how long the resume took."""
    started = time.monotonic()
    client = await connect(cluster, gateway)
    reply = await client.hello(session_id, last_seq)
    assert reply["resumed"] is True
    return client, time.monotonic() - started


def long_or_short(words: str) -> Callable[[dict[str, Any]], list[Step]]:
    """The model's script: `words` paced for the message "long", a short answer otherwise."""

    def script(request: dict[str, Any]) -> list[Step]:
        if request["messages"][-1]["content"] == "long":
            return paced(text_stream(words), 0.02)
        return text_stream("short answer")

    return script


async def test_session_moves_when_its_owner_is_killed_while_streaming(
    cluster: Cluster, upstream: FakeUpstream
) -> None:
    words = " ".join(f"w{n}" for n in range(400))
    upstream.reset(long_or_short(words))
    first = await connect(cluster, 0)
    session = await first.hello()
    await first.send({"type": "user_message", "content": "long"})
    for _ in range(10):
        await first.receive_until(lambda frame: frame["type"] == "agent_delta")
    owner = owner_of(cluster)
    owner.kill()
    killed_at = time.monotonic()
    assert await read_until_closed(first, MOVE_BOUND_S) == 1011
    last_seq = max(numbered(first.received))

    second, _ = await resume_elsewhere(cluster, 1, session["session_id"], last_seq)
    moved_after = time.monotonic() - killed_at
    ended = await second.receive_until(state_is("error"))
    # events whose inputs were in the log but never reached the IDE come first, then the end
    assert numbered(second.received)[0] == last_seq + 1
    interrupted = [f for f in second.received if f.get("code") == "interrupted"]
    assert interrupted and ended["seq"] == interrupted[0]["seq"] + 1
    frames = await second.run_turn("again")
    assert "short answer" in "".join(f.get("text", "") for f in frames)
    assert_every_seq_once(first.received + second.received)
    assert moved_after < MOVE_BOUND_S, moved_after
    await second.close()


def read_a_file(request: dict[str, Any]) -> list[Step]:
    """The model asks for a.txt, then answers once the tool's result is in."""
    if request["messages"][-1]["role"] == "tool":
        return text_stream("Read it.")
    return tool_call_stream([("read_file", '{"path": "a.txt"}')])


async def awaiting_a_tool(
    cluster: Cluster, upstream: FakeUpstream
) -> tuple[ProtocolClient, Frame, Frame]:
    """A session opened through gateway 1 waiting for its read_file: (client, hello, call)."""
    upstream.reset(read_a_file)
    first = await connect(cluster, 1)
    session = await first.hello()
    await first.send({"type": "user_message", "content": "read a.txt"})
    call = await first.receive_until(lambda frame: frame["type"] == "tool_call")
    await first.receive_until(state_is("awaiting_tool"))
    return first, session, call


async def test_session_moves_when_its_owner_is_killed_awaiting_a_tool(
    cluster: Cluster, upstream: FakeUpstream
) -> None:
    first, session, call = await awaiting_a_tool(cluster, upstream)
    owner_of(cluster).kill()
    killed_at = time.monotonic()
    assert await read_until_closed(first, MOVE_BOUND_S) == 1011
    last_seq = max(numbered(first.received))

    second, _ = await resume_elsewhere(cluster, 0, session["session_id"], last_seq)
    assert time.monotonic() - killed_at < MOVE_BOUND_S
    assert await second.receive() == call
    await second.send(
        {"type": "tool_result", "call_id": call["call_id"], "ok": True, "output": {"content": "x"}}
    )
    await second.receive_until(state_is("done"))
    assert_every_seq_once(first.received + second.received)
    await second.close()


async def log_writers(nats_url: str, session_id: str) -> list[str]:
    """The node that wrote each message of the session's log, in order."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        last = await js.get_last_msg(LOG_STREAM, log_subject(session_id))
        subscription = await js.subscribe(log_subject(session_id), ordered_consumer=True)
        writers = []
        while True:
            message = await subscription.next_msg(timeout=10)
            writers.append((message.headers or {})[MSG_ID].split(".")[1])
            if message.metadata.sequence.stream >= (last.seq or 0):
                return writers
    finally:
        await nc.close()


async def test_a_stopped_owner_that_comes_back_does_not_act_as_owner(
    cluster: Cluster, upstream: FakeUpstream
) -> None:
    words = " ".join(f"w{n}" for n in range(300))
    upstream.reset(long_or_short(words))
    first = await connect(cluster, 0)
    session = await first.hello()
    session_id = session["session_id"]
    await first.send({"type": "user_message", "content": "long"})
    for _ in range(5):
        await first.receive_until(lambda frame: frame["type"] == "agent_delta")
    stale = owner_of(cluster)
    assert stale.proc is not None
    stale.proc.send_signal(signal.SIGSTOP)
    assert await read_until_closed(first, MOVE_BOUND_S) == 1011
    last_seq = max(numbered(first.received))
    second, _ = await resume_elsewhere(cluster, 1, session_id, last_seq)
    await second.receive_until(state_is("error"))
    new_owner = next(o for o in cluster.orchestrators if o is not stale and cluster.sessions_of(o))

    stale.proc.send_signal(signal.SIGCONT)
    deadline = time.monotonic() + MOVE_BOUND_S
    while cluster.sessions_of(stale) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert cluster.sessions_of(stale) == 0, "the stale owner still holds the session"
    frames = await second.run_turn("again")
    assert "short answer" in "".join(f.get("text", "") for f in frames)
    assert cluster.sessions_of(new_owner) == 1
    assert_every_seq_once(first.received + second.received)
    await second.close()

    writers = await log_writers(cluster.nats.url, session_id)
    handover = writers.index(writers[-1])
    assert writers[0] != writers[-1] and set(writers[handover:]) == {writers[-1]}, writers


async def test_a_tool_result_sent_while_the_owner_was_cut_off_from_the_broker_is_asked_again(
    tmp_path: Path, nats_server: LocalNats, upstream: FakeUpstream
) -> None:
    with (
        CuttableForwarder(nats_server.port) as forwarder,
        running_cluster(
            tmp_path,
            nats_server,
            upstream.base_url,
            orchestrators=1,
            orchestrator_broker=f"nats://127.0.0.1:{forwarder.port}",
        ) as cluster,
    ):
        first, session, call = await awaiting_a_tool(cluster, upstream)
        forwarder.cut()
        # the owner is not subscribed while it reconnects: this answer is lost on the way
        result = {"type": "tool_result", "call_id": call["call_id"], "ok": True}
        await first.send({**result, "output": {"content": "x"}})
        assert await read_until_closed(first, 10) == 1011
        last_seq = max(numbered(first.received))
        second, _ = await resume_elsewhere(cluster, 0, session["session_id"], last_seq)
        assert await second.receive() == call
        await second.send({**result, "output": {"content": "x"}})
        await second.receive_until(state_is("done"))
        assert_every_seq_once(first.received + second.received)
        await second.close()


async def test_sessions_continue_after_the_nats_server_restarts_with_its_store(
    cluster: Cluster, upstream: FakeUpstream
) -> None:
    upstream.reset(lambda request: text_stream("one two three"))
    first = await connect(cluster, 0)
    session = await first.hello()
    frames = await first.run_turn("before")
    last_seq = max(numbered(frames))

    cluster.nats.restart()
    # frames published while the gateway was cut off are gone: it closes the IDE, which resumes
    with pytest.raises(ConnectionClosed) as closed:
        await first.receive(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    second, _ = await resume_elsewhere(cluster, 1, session["session_id"], last_seq)
    frames = await second.run_turn("after")
    assert min(numbered(frames)) == last_seq + 1
    await second.close()
    fresh = await connect(cluster, 0)
    await fresh.hello()
    assert (await fresh.run_turn("new"))[-1]["state"] == "done"
    await fresh.close()


async def test_a_tokens_session_cap_counts_its_sessions_on_every_orchestrator(
    tmp_path: Path, nats_server: LocalNats, upstream: FakeUpstream
) -> None:
    cap = ("--max-sessions-per-token", "4")
    with running_cluster(
        tmp_path, nats_server, upstream.base_url, orchestrator_args=cap
    ) as cluster:
        clients = [await connect(cluster, index % 2) for index in range(5)]
        for client in clients[:4]:
            await client.hello()
        held = [cluster.sessions_of(orchestrator) for orchestrator in cluster.orchestrators]
        assert sum(held) == 4 and max(held) < 4, held
        await clients[4].send({"type": "hello", "protocol": 1, "id": "h5"})
        refused = await clients[4].receive()
        assert (refused["type"], refused["code"], refused["id"]) == ("error", "session_limit", "h5")
        assert "already holds 4 sessions" in refused["message"]
        for client in clients:
            await client.close()


async def test_an_answer_larger_than_the_servers_queue_for_a_gateway_arrives_whole(
    tmp_path: Path, nats_server: LocalNats, upstream: FakeUpstream
) -> None:
    # 128 MB at full speed: the owner publishes faster than one gateway relays, and what
    # nats-server queues for a gateway (max_pending) is 64 MiB; flow control keeps it under
    # (over the default output budget of a turn: lifted)
    piece = "y" * (512 * 1024)
    upstream.reset(lambda request: pieces_stream(piece, 256))
    unlimited = ("--max-turn-output", "0", "--max-resume-chars", str(8 * 1024 * 1024))
    # ending a 128 MB turn keeps the owner's loop busy for seconds on two cores shared with
    # other test workers: a lease that outlasts it, so no failover is mistaken for the answer
    with running_cluster(
        tmp_path, nats_server, upstream.base_url, orchestrator_args=unlimited, lease_ttl_s=10
    ) as cluster:
        client = await connect(cluster, 0)
        await client.hello()
        received = await client.text_of_turn("a very long answer")
        await client.close()
    assert received == 256 * len(piece)
