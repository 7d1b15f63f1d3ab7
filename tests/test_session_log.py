"""The session log on a real nats-server: a claim fences the old owner off, records of any
size come back exactly, and an expired or unknown session is not claimed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import nats
import pytest
from nats.aio.client import Client

from agent_service.local_nats import LocalNats, running_nats
from orchestrator.core import CoreConfig
from orchestrator.events import Event, ToolResultReceived, UserMessageReceived
from orchestrator.session_log import ClaimContested, SessionLog, ensure_log_stream
from tests.support.procs import free_port
from wire.broker import Reassembly, chunk_header, chunks


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNats]:
    with running_nats(tmp_path_factory.mktemp("nats"), "127.0.0.1", free_port()) as server:
        yield server


@pytest.fixture
async def client(nats_server: LocalNats) -> AsyncIterator[Client]:
    nc = await nats.connect(nats_server.url)
    await ensure_log_stream(nc.jetstream(), 3600)
    yield nc
    await nc.close()


class Node:
    """One node's session log, noting the sessions it lost."""

    def __init__(self, nc: Client, name: str, max_payload: int | None = None) -> None:
        self.lost: list[str] = []
        self.announced: list[str] = []

        async def announce(session_id: str) -> None:
            self.announced.append(session_id)

        self.log = SessionLog(
            nc.jetstream(), name, max_payload or nc.max_payload, announce, lambda: True
        )
        self.log.on_lost = self.lost.append


async def written(node: Node, session_id: str) -> None:
    assert await node.log.durable(session_id, node.log.appended(session_id))


def started(node: Node, session_id: str, *inputs: Event) -> None:
    node.log.session_started(session_id, CoreConfig(), "fake-model", owner="digest")
    for event in inputs:
        node.log.record_input(session_id, event)


async def test_a_claim_fences_the_old_owner_off_and_keeps_its_inputs(client: Client) -> None:
    a, b = Node(client, "na"), Node(client, "nb")
    started(a, "s_fence", UserMessageReceived("hello", "m1"))
    await written(a, "s_fence")
    assert a.announced == ["s_fence"]

    logged = await b.log.claim("s_fence", not_before=0)
    assert logged is not None and logged.owner == "digest"
    assert logged.inputs == [UserMessageReceived("hello", "m1")]
    assert logged.config == CoreConfig()

    a.log.record_input("s_fence", UserMessageReceived("from the stale owner"))
    assert not await a.log.durable("s_fence", a.log.appended("s_fence"))
    assert a.lost == ["s_fence"]
    b.log.record_input("s_fence", UserMessageReceived("from the new owner"))
    await written(b, "s_fence")
    assert b.lost == []

    again = await Node(client, "nc").log.claim("s_fence", not_before=0)
    assert again is not None
    assert [event.content for event in again.inputs] == ["hello", "from the new owner"]  # type: ignore[attr-defined]


async def test_of_two_nodes_claiming_at_once_the_second_is_refused(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, c = Node(client, "na"), Node(client, "nb"), Node(client, "nc")
    started(a, "s_race", UserMessageReceived("hello"))
    await written(a, "s_race")
    read_before_b_claimed = await c.log._read("s_race")
    assert await b.log.claim("s_race", not_before=0) is not None

    async def stale_read(session_id: str) -> tuple[list[str], int, float]:
        return read_before_b_claimed

    monkeypatch.setattr(c.log, "_read", stale_read)
    with pytest.raises(ClaimContested):
        await c.log.claim("s_race", not_before=0)
    b.log.record_input("s_race", UserMessageReceived("still the owner"))
    await written(b, "s_race")
    assert b.lost == []


async def test_inputs_larger_than_a_message_come_back_whole(client: Client) -> None:
    output = {"content": "x" * 300_000 + "é" * 1000}
    a = Node(client, "na", max_payload=64 * 1024)
    started(a, "s_big", ToolResultReceived("c1", True, output))
    await written(a, "s_big")
    logged = await Node(client, "nb").log.claim("s_big", not_before=0)
    assert logged is not None and logged.inputs == [ToolResultReceived("c1", True, output)]


async def test_no_claim_of_a_session_without_a_log_or_past_its_grace(client: Client) -> None:
    node = Node(client, "na")
    assert await node.log.claim("s_never", not_before=0) is None
    started(node, "s_old")
    await written(node, "s_old")
    assert await Node(client, "nb").log.claim("s_old", not_before=time.time() + 60) is None


def test_chunks_reassemble_and_a_cut_text_is_dropped() -> None:
    data = bytes(range(256)) * 40
    pieces = chunks(data, 1000)
    joined = Reassembly()
    results = [
        joined.add(piece, chunk_header(i, len(pieces)).get("Agent-Chunk"))
        for i, piece in enumerate(pieces)
    ]
    assert results[:-1] == [None] * (len(pieces) - 1) and results[-1] == data
    cut = Reassembly()
    assert cut.add(pieces[0], f"0/{len(pieces)}") is None
    assert cut.add(b"whole", None) == b"whole"
    assert cut.add(pieces[2], f"2/{len(pieces)}") is None
    assert cut.add(pieces[0], "0/2") is None and cut.add(pieces[1], "1/2") == pieces[0] + pieces[1]
