"""The orchestrator SIGKILLed at random points of many turns, with transcripts on: no seq is
ever given to two different events, and a client that saw events the rebuilt session lost is
told `resume_gap`."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support.fake_upstream import FakeUpstream, paced, text_stream
from tests.support.forked_service import ServiceForker, kill_if_forked_here
from tests.support.procs import free_port, wait_healthy

LANES = 4
KILLS_PER_LANE = 28
Frame = dict[str, Any]


class SeqLedger:
    """Every numbered event received, by (session, seq): a second, different one is a reuse."""

    def __init__(self) -> None:
        self.events: dict[tuple[str, int], Frame] = {}
        self.reused: list[tuple[Frame, Frame]] = []

    def add(self, frame: Frame) -> int | None:
        """Note one frame; its seq, if it has one."""
        if "seq" not in frame:
            return None
        key = (frame["session_id"], frame["seq"])
        known = self.events.setdefault(key, frame)
        if known != frame:
            self.reused.append((known, frame))
        return int(frame["seq"])

    def last_seq(self, session_id: str) -> int:
        return max((seq for sid, seq in self.events if sid == session_id), default=0)


async def receive_all(link: ClientConnection, ledger: SeqLedger) -> None:
    try:
        async for text in link:
            ledger.add(json.loads(text))
    except ConnectionClosed:
        pass


class Lane:
    """One transcript file and one client, its orchestrator killed again and again."""

    def __init__(self, number: int, work_dir: Path, upstream: FakeUpstream) -> None:
        self.number = number
        self.db = work_dir / f"lane{number}.db"
        self.log = work_dir / f"lane{number}.log"
        self.upstream = upstream
        self.rng = random.Random(20261201 + number)
        self.session_id: str | None = None
        self.kills = 0
        self.lost = 0

    async def start_orchestrator(
        self, forker: ServiceForker, lock: asyncio.Lock
    ) -> tuple[int, int]:
        port = free_port()
        argv = [
            "orchestrator",
            f"--orchestrator-port={port}",
            f"--transcripts={self.db}",
            f"--llm-base-url={self.upstream.base_url}",
            "--model=fake-model",
        ]
        async with lock:
            pid = forker.start(argv, self.log)
        await asyncio.to_thread(wait_healthy, f"http://127.0.0.1:{port}/healthz", 30)
        return pid, port

    async def connect(self, port: int) -> ClientConnection:
        return await connect(
            f"ws://127.0.0.1:{port}/v1/link",
            additional_headers={"X-Agent-Principal": f"lane{self.number}"},
            max_size=None,
        )

    async def audit(self, port: int, ledger: SeqLedger) -> None:
        """Read the rebuilt session's whole history into the ledger: a seq it numbers
        differently from what a client was sent before the kill is a reuse."""
        if self.session_id is None:
            return
        link = await self.connect(port)
        await link.send(json.dumps({"type": "hello", "protocol": 1, "session_id": self.session_id}))
        reply = json.loads(await link.recv())
        if reply["type"] == "session":
            # the reply to a cancel comes after every event the resume sends
            await link.send(json.dumps({"type": "cancel"}))
            while True:
                frame = json.loads(await asyncio.wait_for(link.recv(), 10))
                if frame.get("code") == "nothing_to_cancel":
                    break
                ledger.add(frame)
        await link.close()

    async def open_session(self, port: int, ledger: SeqLedger) -> ClientConnection:
        """Resume the lane's session, or start a new one when it cannot be resumed."""
        await self.audit(port, ledger)
        link = await self.connect(port)
        hello: Frame = {"type": "hello", "protocol": 1}
        if self.session_id is not None:
            hello |= {"session_id": self.session_id, "last_seq": ledger.last_seq(self.session_id)}
        await link.send(json.dumps(hello))
        reply = json.loads(await link.recv())
        if reply["type"] == "error":
            # resume_gap: this client saw events the rebuilt session lost; unknown_session:
            # the kill came before the session's first row was written
            assert reply["code"] in ("resume_gap", "unknown_session"), reply
            self.lost += 1
            await link.send(json.dumps({"type": "hello", "protocol": 1}))
            reply = json.loads(await link.recv())
        assert reply["type"] == "session", reply
        self.session_id = reply["session_id"]
        return link

    async def run(self, forker: ServiceForker, lock: asyncio.Lock, ledger: SeqLedger) -> None:
        for turn in range(KILLS_PER_LANE):
            pid, port = await self.start_orchestrator(forker, lock)
            link = await self.open_session(port, ledger)
            receiving = asyncio.create_task(receive_all(link, ledger))
            await asyncio.sleep(0.02)  # what a resume sends again comes first
            await link.send(json.dumps({"type": "user_message", "content": f"turn {turn}"}))
            await asyncio.sleep(self.rng.uniform(0, 0.5))
            kill_if_forked_here(pid)
            self.kills += 1
            await asyncio.wait_for(receiving, 10)


async def test_no_seq_is_reused_over_a_hundred_kills(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    words = " ".join(f"w{n}" for n in range(12))
    upstream.reset(lambda request: paced(text_stream(words), 0.02))
    ledger = SeqLedger()
    lanes = [Lane(number, tmp_path, upstream) for number in range(LANES)]
    lock = asyncio.Lock()
    with ServiceForker() as forker:
        await asyncio.gather(*(lane.run(forker, lock, ledger) for lane in lanes))
    assert sum(lane.kills for lane in lanes) >= 100
    assert not ledger.reused, f"{len(ledger.reused)} seqs reused, first: {ledger.reused[0]}"
    deltas = [frame for frame in ledger.events.values() if frame["type"] == "agent_delta"]
    interrupted = [frame for frame in ledger.events.values() if frame.get("code") == "interrupted"]
    assert len(deltas) > 100 and interrupted, "kills landed in the middle of streamed answers"
