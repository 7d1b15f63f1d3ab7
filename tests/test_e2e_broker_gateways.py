"""Gateways on a real nats-server: a SIGKILLed gateway's sessions are detached by their
orchestrator within a bound and resume through the other gateway with every seq once; the
gateways' /healthz follows the orchestrators' leases; connections of two gateways never mix."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from agent_service.local_nats import LocalNats
from tests.support.cluster import LEASE_TTL_S, Cluster, running_cluster
from tests.support.fake_upstream import FakeUpstream, text_stream
from tests.support.procs import ServiceProcess
from tests.support.wsclient import ProtocolClient, state_is
from tests.test_e2e_broker import (
    assert_every_seq_once,
    awaiting_a_tool,
    cluster,  # noqa: F401  (fixture)
    connect,
    long_or_short,
    nats_server,  # noqa: F401  (fixture)
    numbered,
    owner_of,
    resume_elsewhere,
)

Frame = dict[str, Any]
# A node drops a silent gateway's connections once a TTL has passed since its last beat
# (which came at most a quarter TTL before the kill), at its next quarter-TTL look; the
# rest is room for a loaded two-core machine.
DETACH_BOUND_S = 1.25 * LEASE_TTL_S + 2
GONE_LINE = "gateway stopped beating"


def health(process: ServiceProcess) -> tuple[int, dict[str, Any]]:
    """The status and body of a service's /healthz."""
    assert process.health_url is not None
    try:
        with urllib.request.urlopen(process.health_url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


async def within(seconds: float, check: Any) -> float:
    """Poll `check()` until it is true; how long that took (fails past `seconds`)."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, f"not within {seconds} s"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def read_until_dropped(client: ProtocolClient) -> None:
    """Receive until the socket is gone (a killed gateway sends no close frame)."""
    with contextlib.suppress(ConnectionClosed):
        while True:
            await client.receive(10)


def delta_text(frames: list[Frame]) -> str:
    """The streamed text, each numbered delta counted once."""
    by_seq = {f["seq"]: f for f in frames if f.get("type") == "agent_delta"}
    return "".join(by_seq[seq]["text"] for seq in sorted(by_seq))


@pytest.mark.parametrize("resume", ["at_once", "after_the_detach"])
async def test_a_gateway_killed_while_streaming_detaches_and_the_turn_reaches_the_ide_once(
    cluster: Cluster,  # noqa: F811
    upstream: FakeUpstream,
    resume: str,
) -> None:
    words = " ".join(f"w{n}" for n in range(150))
    upstream.reset(long_or_short(words))
    first = await connect(cluster, 0)
    session = await first.hello()
    await first.send({"type": "user_message", "content": "long"})
    for _ in range(10):
        await first.receive_until(lambda frame: frame["type"] == "agent_delta")
    owner = owner_of(cluster)
    cluster.gateways[0].kill()
    killed_at = time.monotonic()
    await read_until_dropped(first)
    last_seq = max(numbered(first.received))
    if resume == "after_the_detach":
        await within(DETACH_BOUND_S, lambda: health(owner)[1]["attached"] == 0)

    second, _ = await resume_elsewhere(cluster, 1, session["session_id"], last_seq)
    await second.receive_until(state_is("done"), timeout=30)
    await within(DETACH_BOUND_S, lambda: GONE_LINE in owner.output())
    detached_after = time.monotonic() - killed_at
    assert numbered(second.received)[0] == last_seq + 1
    assert_every_seq_once(first.received + second.received)
    assert delta_text(first.received + second.received) == words
    assert detached_after < DETACH_BOUND_S, detached_after
    frames = await second.run_turn("again")
    assert "short answer" in delta_text(frames)
    assert health(owner)[1]["attached"] == 1
    await second.close()


async def test_a_gateway_killed_awaiting_a_tool_detaches_and_the_call_is_offered_again(
    cluster: Cluster,  # noqa: F811
    upstream: FakeUpstream,
) -> None:
    first, session, call = await awaiting_a_tool(cluster, upstream)
    owner = owner_of(cluster)
    assert health(owner)[1]["attached"] == 1
    cluster.gateways[1].kill()
    detached_after = await within(DETACH_BOUND_S, lambda: health(owner)[1]["attached"] == 0)
    assert GONE_LINE in owner.output()
    last_seq = max(numbered(first.received))

    second, _ = await resume_elsewhere(cluster, 0, session["session_id"], last_seq)
    assert await second.receive() == call
    await second.send(
        {"type": "tool_result", "call_id": call["call_id"], "ok": True, "output": {"content": "x"}}
    )
    await second.receive_until(state_is("done"))
    assert "Read it." in delta_text(second.received)
    assert_every_seq_once(first.received + second.received)
    assert detached_after < DETACH_BOUND_S, detached_after
    await second.close()


async def test_gateway_health_lists_the_orchestrators_and_is_degraded_without_them(
    cluster: Cluster,  # noqa: F811
) -> None:
    status, body = health(cluster.gateways[0])
    assert status == 200 and body["status"] == "ok" and body["orchestrator"] is True, body
    assert len(body["orchestrators"]) == 3 and body["orchestrators"] == sorted(
        body["orchestrators"]
    )

    leaving, last = cluster.orchestrators[:2], cluster.orchestrators[2]
    for orchestrator in leaving:
        assert orchestrator.stop() == 0
    status, body = health(cluster.gateways[1])
    assert status == 200 and len(body["orchestrators"]) == 1, body
    last.kill()
    degraded_after = await within(LEASE_TTL_S + 2, lambda: health(cluster.gateways[0])[0] == 503)
    assert health(cluster.gateways[0])[1] == {
        "status": "degraded",
        "orchestrator": False,
        "orchestrators": [],
    }
    assert degraded_after < LEASE_TTL_S + 2, degraded_after


@pytest.fixture
def one_orchestrator(
    tmp_path: Path,
    nats_server: LocalNats,  # noqa: F811
    upstream: FakeUpstream,
) -> Iterator[Cluster]:
    with running_cluster(tmp_path, nats_server, upstream.base_url, orchestrators=1) as started:
        yield started


async def test_connections_of_two_gateways_on_one_orchestrator_stay_apart(
    one_orchestrator: Cluster, upstream: FakeUpstream
) -> None:
    upstream.reset(lambda request: text_stream(request["messages"][-1]["content"]))
    clients = [await connect(one_orchestrator, gateway) for gateway in (0, 1)]
    sessions = [await client.hello() for client in clients]
    assert sessions[0]["session_id"] != sessions[1]["session_id"]
    turns = await asyncio.gather(*(c.run_turn(f"from {n}") for n, c in enumerate(clients)))
    assert [delta_text(frames) for frames in turns] == ["from 0", "from 1"]
    for client in clients:
        await client.close()
