"""A session core lives exactly as long as its owner keeps it, and costs the same at any count.

The transition table is one shared `transitions` machine that never registers a core as
its model: nothing outside the owner references a core, so nothing has to remember to
release one. Counted, never timed: after replays, expired sessions and 10,000 live ones,
no core is left over and the shared machine holds none.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path

from orchestrator import statedoc
from orchestrator.core import SESSION_MACHINE, CoreConfig, SessionCore, replay_inputs
from orchestrator.events import Event, LlmStreamEnded, LlmTextDelta, UserMessageReceived
from orchestrator.llm_client import LlmClient, LlmSettings
from orchestrator.recording import NullRecorder
from orchestrator.sessions import SessionLimits, SessionRegistry
from tests.support.recorded_session import record_session
from transcripts import TranscriptRecorder, TranscriptStore, verify_session
from wire import SessionState

TURN: list[Event] = [
    UserMessageReceived("hello"),
    LlmTextDelta("t1.1", "hi"),
    LlmStreamEnded("t1.1", "stop"),
]


def _live_cores() -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, SessionCore))


def test_replay_leaves_no_core_behind_when_run_1000_times() -> None:
    before = _live_cores()
    for _ in range(1000):
        assert replay_inputs("s1", CoreConfig(), TURN)
    assert _live_cores() == before
    assert SESSION_MACHINE.models == []


def test_cores_are_freed_when_their_owners_drop_them_after_a_turn() -> None:
    cores = [SessionCore(f"s{n}") for n in range(1000)]
    for core in cores:
        core.handle(TURN[0])
    refs = [weakref.ref(core) for core in cores]
    del cores, core
    gc.collect()
    assert [ref for ref in refs if ref() is not None] == []


def test_transcript_replay_leaves_no_core_behind_when_a_session_is_verified(
    tmp_path: Path,
) -> None:
    with TranscriptRecorder(tmp_path / "t.db") as recorder:
        record_session(recorder, "s1")
    store = TranscriptStore.open(tmp_path / "t.db")
    before = _live_cores()
    for _ in range(20):
        assert verify_session(store, "s1").ok
    assert _live_cores() == before


def test_state_doc_leaves_no_core_behind_when_rendered() -> None:
    before = _live_cores()
    statedoc.render()
    assert _live_cores() == before


async def test_registry_frees_its_sessions_when_their_grace_period_ends() -> None:
    registry = SessionRegistry(
        CoreConfig(),
        LlmClient(LlmSettings(base_url="http://127.0.0.1:9/v1")),
        NullRecorder(),
        SessionLimits(grace_period_s=0.0),
    )
    refs = [
        weakref.ref(registry.restore(f"s{n}", CoreConfig(), "owner", []).core) for n in range(1000)
    ]
    for _ in range(3):
        await asyncio.sleep(0)
    assert len(registry) == 0
    gc.collect()
    assert [ref for ref in refs if ref() is not None] == []


def test_a_new_core_touches_no_shared_state_when_10000_are_alive() -> None:
    cores = [SessionCore(f"s{n}") for n in range(10_000)]
    for core in cores[::1000]:
        core.handle(TURN[0])
    assert SESSION_MACHINE.models == []
    newest = SessionCore("s_newest")
    assert SESSION_MACHINE.models == []
    assert newest.state == SessionState.IDLE
    assert {core.state for core in cores[1::1000]} == {SessionState.IDLE}
    assert {core.state for core in cores[::1000]} == {SessionState.STREAMING}
