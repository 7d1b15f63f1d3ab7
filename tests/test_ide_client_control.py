"""The reference IDE client keeps the user in control: approvals, the approval mode, undo.

Over a real socket to a scripted gateway speaking protocol 1.2 (tests/support/fake_gateway.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ide_client.approvals import ApprovalAnswer
from ide_client.checkpoints import CheckpointCode, CheckpointError, CheckpointStore
from ide_client.client import IdeClient
from ide_client.sample import AUTH_JS, create_sample_workspace
from ide_client.tools import ToolRunner
from ide_client.workspace import Workspace
from tests.support.fake_gateway import TOKEN, FakeGateway, Peer
from wire import ApprovalMode, ApprovalRequest, Decision

APPROVING: dict[str, Any] = {"features": ["approvals", "steering"], "approval": "ask"}
ADD_LINE = """\
--- a/src/auth.js
+++ b/src/auth.js
@@ -1,2 +1,3 @@
 // Session authentication for the sample app.
+// Logged.
 const crypto = require("crypto");
"""
PATCH = {"diff": ADD_LINE}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return create_sample_workspace(tmp_path / "ws")


@pytest.fixture
def store(root: Path) -> CheckpointStore:
    return CheckpointStore(Workspace(root))


class Asked:
    """An approval handler that records each request and answers with `answer`, once
    `release` is set."""

    def __init__(self, answer: ApprovalAnswer) -> None:
        self.answer = answer
        self.requests: list[ApprovalRequest] = []
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, request: ApprovalRequest) -> ApprovalAnswer:
        self.requests.append(request)
        await self.release.wait()
        return self.answer


def client_for(
    gateway: FakeGateway,
    store: CheckpointStore,
    asked: Asked | None = None,
    approval: ApprovalMode | None = ApprovalMode.ASK,
) -> IdeClient:
    return IdeClient(
        gateway.url,
        TOKEN,
        ToolRunner(store.workspace, checkpoints=store),
        on_approval=asked,
        approval=approval,
        checkpoints=store,
    )


async def approval_requested(peer: Peer, call_id: str = "c1") -> None:
    await peer.expect("user_message")
    await peer.state("streaming", "idle")
    await peer.event("agent_delta", turn_id="t1", text="Patching.")
    await peer.event(
        "approval_request", turn_id="t1", call_id=call_id, tool="apply_patch", arguments=PATCH
    )
    await peer.state("awaiting_tool", "streaming")


async def test_client_declares_approvals_and_writes_only_after_the_allowed_tool_call(
    root: Path, store: CheckpointStore
) -> None:
    on_disk_when_answered: list[str] = []

    async def script(peer: Peer) -> None:
        hello = await peer.accept_hello(**APPROVING)
        assert hello["capabilities"]["features"] == ["approvals", "steering"]
        assert hello["approval"] == "ask"
        await approval_requested(peer)
        approval = await peer.expect("approval")
        on_disk_when_answered.append((root / "src" / "auth.js").read_text())
        assert approval == {
            "type": "approval",
            "call_id": "c1",
            "decision": "allow_once",
            "end_turn": False,
            "id": "approval-c1",
        }
        await peer.event("approval_decision", turn_id="t1", call_id="c1", decision="allow_once")
        await peer.event(
            "tool_call", call_id="c1", tool="apply_patch", arguments=PATCH, approval="user"
        )
        result = await peer.expect("tool_result")
        assert result["ok"] is True
        await peer.state("streaming", "awaiting_tool")
        await peer.finish_turn(["Done."])
        await peer.wait_closed()

    asked = Asked(ApprovalAnswer(Decision.ALLOW_ONCE))
    async with FakeGateway(script) as gateway, client_for(gateway, store, asked) as client:
        turn = await client.run_turn("add a log line")

    assert turn.ok
    assert on_disk_when_answered == [AUTH_JS], "nothing was written before the tool_call"
    assert "// Logged." in (root / "src" / "auth.js").read_text()
    assert [request.call_id for request in asked.requests] == ["c1"]
    assert asked.requests[0].arguments == PATCH


async def test_client_sends_a_rejection_with_its_reason_and_writes_nothing(
    root: Path, store: CheckpointStore
) -> None:
    async def script(peer: Peer) -> None:
        await peer.accept_hello(**APPROVING)
        await approval_requested(peer)
        approval = await peer.expect("approval")
        assert (approval["decision"], approval["message"]) == ("reject", "use the logger")
        await peer.event(
            "approval_decision",
            turn_id="t1",
            call_id="c1",
            decision="reject",
            message="use the logger",
        )
        await peer.state("streaming", "awaiting_tool")
        await peer.finish_turn(["Understood."])
        await peer.wait_closed()

    asked = Asked(ApprovalAnswer(Decision.REJECT, "use the logger"))
    async with FakeGateway(script) as gateway, client_for(gateway, store, asked) as client:
        turn = await client.run_turn("add a log line")

    assert turn.ok
    assert (root / "src" / "auth.js").read_text() == AUTH_JS


async def test_an_approval_offered_again_after_a_resume_is_asked_once_and_answered_once(
    store: CheckpointStore,
) -> None:
    async def script(peer: Peer) -> None:
        if peer.gateway.connections == 1:
            await peer.accept_hello(**APPROVING)
            await approval_requested(peer)
            peer.drop()
            return
        hello = await peer.accept_hello(resumed=True, **APPROVING)
        assert hello["last_seq"] == 4
        await peer.replay(3)
        asked.release.set()
        approval = await peer.expect("approval")
        assert approval["decision"] == "allow_tool"
        await peer.event("approval_decision", turn_id="t1", call_id="c1", decision="allow_tool")
        await peer.event(
            "tool_call", call_id="c1", tool="apply_patch", arguments=PATCH, approval="user"
        )
        await peer.expect("tool_result")
        await peer.state("streaming", "awaiting_tool")
        await peer.finish_turn(["Done."])
        await peer.wait_closed()

    asked = Asked(ApprovalAnswer(Decision.ALLOW_TOOL))
    asked.release.clear()
    async with FakeGateway(script) as gateway, client_for(gateway, store, asked) as client:
        turn = await client.run_turn("add a log line")

    assert turn.ok
    assert len(asked.requests) == 1, "the user is asked once"
    assert len(gateway.received_of("approval")) == 1, "and answers once"


async def test_an_answer_lost_with_the_connection_is_sent_again_without_asking_again(
    store: CheckpointStore,
) -> None:
    async def script(peer: Peer) -> None:
        if peer.gateway.connections == 1:
            await peer.accept_hello(**APPROVING)
            await approval_requested(peer)
            await peer.expect("approval")
            peer.drop()
            return
        await peer.accept_hello(resumed=True, **APPROVING)
        await peer.replay(3)
        again = await peer.expect("approval")
        assert again["decision"] == "reject"
        await peer.event("approval_decision", turn_id="t1", call_id="c1", decision="reject")
        await peer.state("streaming", "awaiting_tool")
        await peer.finish_turn(["Fine."])
        await peer.wait_closed()

    asked = Asked(ApprovalAnswer(Decision.REJECT))
    async with FakeGateway(script) as gateway, client_for(gateway, store, asked) as client:
        turn = await client.run_turn("add a log line")

    assert turn.ok
    assert len(asked.requests) == 1


async def test_a_write_call_without_an_approval_is_not_run_in_an_approvals_session(
    root: Path, store: CheckpointStore
) -> None:
    async def script(peer: Peer) -> None:
        await peer.accept_hello(**APPROVING)
        await peer.expect("user_message")
        await peer.state("streaming", "idle")
        await peer.event("tool_call", call_id="c1", tool="apply_patch", arguments=PATCH)
        result = await peer.expect("tool_result")
        assert (result["ok"], result["error"]["code"]) == (False, "declined")
        await peer.state("streaming", "awaiting_tool")
        await peer.finish_turn(["Oh."])
        await peer.wait_closed()

    asked = Asked(ApprovalAnswer(Decision.ALLOW_ONCE))
    async with FakeGateway(script) as gateway, client_for(gateway, store, asked) as client:
        await client.run_turn("add a log line")

    assert (root / "src" / "auth.js").read_text() == AUTH_JS


async def test_the_pending_question_is_withdrawn_when_the_turn_is_cancelled(
    store: CheckpointStore,
) -> None:
    async def script(peer: Peer) -> None:
        await peer.accept_hello(**APPROVING)
        await approval_requested(peer)
        await peer.expect("cancel")
        await peer.state("idle", "awaiting_tool")
        await peer.wait_closed()

    asked = Asked(ApprovalAnswer(Decision.ALLOW_ONCE))
    asked.release.clear()
    async with FakeGateway(script) as gateway, client_for(gateway, store, asked) as client:
        running = asyncio.create_task(client.run_turn("add a log line"))
        while not asked.requests:
            await asyncio.sleep(0.01)
        await client.cancel()
        turn = await running

    assert turn.state is not None and turn.state.value == "idle"
    assert gateway.received_of("approval") == []


async def test_set_approval_between_turns_waits_for_the_service_to_take_the_mode(
    store: CheckpointStore,
) -> None:
    async def script(peer: Peer) -> None:
        hello = await peer.accept_hello(**APPROVING)
        assert "approval" not in hello
        frame = await peer.expect("set_approval")
        assert frame["mode"] == "read-only"
        await peer.event("approval_mode", mode="read-only")
        await peer.wait_closed()

    async with FakeGateway(script) as gateway, client_for(gateway, store, None, None) as client:
        await client.set_approval(ApprovalMode.READ_ONLY)
        assert client.approval_mode == "read-only"
        assert client.last_seq == 1


async def test_ask_needs_a_handler() -> None:
    with pytest.raises(ValueError):
        IdeClient(
            "ws://127.0.0.1:1/v1/ws", TOKEN, ToolRunner(Workspace(".")), approval=ApprovalMode.ASK
        )


@pytest.mark.parametrize("named_first", [True, False], ids=["context-first", "named-at-the-end"])
async def test_undo_puts_back_the_last_turns_files_then_tells_the_service(
    root: Path, store: CheckpointStore, named_first: bool
) -> None:
    async def script(peer: Peer) -> None:
        await peer.accept_hello()
        await peer.expect("user_message")
        await peer.state("streaming", "idle")
        if named_first:
            await peer.event("context", **context("t1"))
        await peer.event("tool_call", call_id="c1", tool="apply_patch", arguments=PATCH)
        await peer.state("awaiting_tool", "streaming")
        await peer.expect("tool_result")
        await peer.state("streaming", "awaiting_tool")
        await peer.finish_turn(["Patched."])
        notice = await peer.expect("files_reverted")
        assert (notice["turn_id"], notice["paths"]) == ("t1", ["src/auth.js"])
        await peer.event("files_reverted", turn_id="t1", paths=["src/auth.js"])
        await peer.wait_closed()

    async with FakeGateway(script) as gateway, client_for(gateway, store, None, None) as client:
        await client.run_turn("patch")
        assert "// Logged." in (root / "src" / "auth.js").read_text()
        reverted = await client.undo()

    assert (reverted.turn_id, reverted.paths) == ("t1", ("src/auth.js",))
    assert (root / "src" / "auth.js").read_text() == AUTH_JS


async def test_undo_with_nothing_to_undo_sends_nothing(store: CheckpointStore) -> None:
    async def script(peer: Peer) -> None:
        await peer.accept_hello()
        await peer.wait_closed()

    async with FakeGateway(script) as gateway, client_for(gateway, store, None, None) as client:
        with pytest.raises(CheckpointError) as caught:
            await client.undo()

    assert caught.value.code is CheckpointCode.NOTHING_TO_UNDO
    assert gateway.received_of("files_reverted") == []


def context(turn_id: str) -> dict[str, object]:
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "estimated": True}
    return {
        "turn_id": turn_id,
        "tokens": 10,
        "window": 1000,
        "estimated": True,
        "compactions": 0,
        "compacted": False,
        "elided": 0,
        "turn_usage": usage,
        "session_usage": usage,
    }
