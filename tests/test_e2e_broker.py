"""Two gateways and three orchestrators on a real nats-server: sessions spread, resume through
any gateway, move to another orchestrator when their owner dies, and keep every seq."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import LEASE_TTL_S, Cluster, running_cluster
from tests.support.fake_upstream import FakeUpstream, text_stream
from tests.support.nats_server import NatsServer, running_nats
from tests.support.wsclient import ProtocolClient

Frame = dict[str, Any]
# A dead owner's sessions move within its lease TTL (the KV entry then expires, within a
# second more), a gateway's heartbeat check (a quarter TTL) and the rebuild from the log.
MOVE_BOUND_S = 2 * LEASE_TTL_S + 6


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    with running_nats(tmp_path) as server:
        yield server


@pytest.fixture
def cluster(tmp_path: Path, nats_server: NatsServer, upstream: FakeUpstream) -> Iterator[Cluster]:
    with running_cluster(tmp_path, nats_server, upstream.base_url) as started:
        yield started


def numbered(frames: list[Frame]) -> list[int]:
    return [frame["seq"] for frame in frames if "seq" in frame]


async def connect(cluster: Cluster, gateway: int) -> ProtocolClient:
    return await ProtocolClient.connect(cluster.gateway_url(gateway), cluster.token)


async def test_sessions_spread_over_orchestrators_and_resume_through_the_other_gateway(
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
