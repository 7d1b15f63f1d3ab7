"""The reference IDE client speaks protocol v1 over a real socket to a scripted gateway."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from ide_client.client import IdeClient, run_one_turn
from ide_client.display import ConsoleDisplay
from ide_client.errors import GatewayCode, GatewayError
from ide_client.sample import AUTH_JS, create_sample_workspace
from ide_client.tools import IMPLEMENTED_TOOLS, ToolRunner
from ide_client.workspace import Workspace
from tests.support.fake_gateway import TOKEN, FakeGateway, Peer
from wire import AgentMessage, Error, Session, SessionState, StateChanged, ToolCall

ADD_LINE = """\
--- a/src/auth.js
+++ b/src/auth.js
@@ -1,2 +1,3 @@
 // Session authentication for the sample app.
+// Logged.
 const crypto = require("crypto");
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return create_sample_workspace(tmp_path / "ws")


@pytest.fixture
def tools(root: Path) -> ToolRunner:
    return ToolRunner(Workspace(root))


def client_for(
    gateway: FakeGateway, tools: ToolRunner, out: io.StringIO | None = None
) -> IdeClient:
    return IdeClient(gateway.url, TOKEN, tools, display=ConsoleDisplay(out, show_diffs=True))


def seqs(frames: list[object]) -> list[int]:
    return [seq for frame in frames if (seq := getattr(frame, "seq", None)) is not None]


async def test_client_runs_a_tool_and_streams_the_answer_when_the_turn_completes(
    root: Path,
) -> None:
    async def script(peer: Peer) -> None:
        hello = await peer.accept_hello()
        assert hello == {
            "type": "hello",
            "protocol": 1,
            "last_seq": 0,
            "client": hello["client"],
            "capabilities": {"tools": list(IMPLEMENTED_TOOLS), "features": ["steering"]},
        }
        assert hello["client"]["name"] == "agent-service-ide"
        message = await peer.expect("user_message")
        assert message["content"] == "Add logging to src/auth.js"
        await peer.state("streaming", "idle")
        await peer.event(
            "tool_call", call_id="c1", tool="read_file", arguments={"path": "src/auth.js"}
        )
        await peer.state("awaiting_tool", "streaming")
        result = await peer.expect("tool_result")
        assert result == {
            "type": "tool_result",
            "call_id": "c1",
            "ok": True,
            "output": {"content": AUTH_JS},
        }
        await peer.state("streaming", "awaiting_tool")
        await peer.finish_turn(["Read ", "the file."])
        await peer.wait_closed()

    out = io.StringIO()
    async with FakeGateway(script) as gateway:
        turn = await run_one_turn(
            gateway.url, TOKEN, root, "Add logging to src/auth.js", display=ConsoleDisplay(out)
        )

    assert turn.state is SessionState.DONE and turn.ok
    assert turn.text == "Read the file."
    assert turn.of_type(AgentMessage)[0].content == turn.text
    assert seqs(turn.frames) == list(range(1, 9))
    assert [frame.state for frame in turn.of_type(StateChanged)] == [
        "streaming",
        "awaiting_tool",
        "streaming",
        "done",
    ]
    assert out.getvalue() == "[tool] read_file src/auth.js -> ok\nRead the file.\n"


async def test_client_answers_ok_false_with_the_tool_error_code_when_a_tool_fails(
    tools: ToolRunner,
) -> None:
    async def script(peer: Peer) -> None:
        await peer.accept_hello()
        await peer.expect("user_message")
        await peer.state("streaming", "idle")
        await peer.event("tool_call", call_id="c1", tool="read_file", arguments={"path": "../etc"})
        await peer.state("awaiting_tool", "streaming")
        result = await peer.expect("tool_result")
        assert result["ok"] is False and "output" not in result
        await peer.event(
            "error",
            code=result["error"]["code"],
            message=result["error"]["message"],
            source="ide",
            call_id="c1",
        )
        await peer.state("streaming", "awaiting_tool")
        await peer.finish_turn(["Sorry."])
        await peer.wait_closed()

    out = io.StringIO()
    async with FakeGateway(script) as gateway, client_for(gateway, tools, out) as client:
        turn = await client.run_turn("read outside")

    assert turn.results["c1"].error is not None
    assert turn.results["c1"].error.code == "outside_workspace"
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[tool] read_file ../etc -> error outside_workspace: ")
    assert lines[1:] == ["Sorry."], "the error event repeating the tool's failure is not shown"


async def test_client_answers_every_parallel_call_exactly_once(
    tools: ToolRunner, root: Path
) -> None:
    async def script(peer: Peer) -> None:
        await peer.accept_hello()
        await peer.expect("user_message")
        await peer.state("streaming", "idle")
        await peer.event(
            "tool_call", call_id="c1", tool="apply_patch", arguments={"diff": ADD_LINE}
        )
        await peer.event("tool_call", call_id="c2", tool="git.diff", arguments={})
        await peer.event("tool_call", call_id="c3", tool="write_file", arguments={"path": "x"})
        await peer.state("awaiting_tool", "streaming")
        results = {(await peer.expect("tool_result"))["call_id"] for _ in range(3)}
        assert results == {"c1", "c2", "c3"}
        await peer.state("streaming", "awaiting_tool")
        await peer.finish_turn(["Done."])
        await peer.wait_closed()

    out = io.StringIO()
    async with FakeGateway(script) as gateway:
        async with client_for(gateway, tools, out) as client:
            turn = await client.run_turn("patch it")
        assert len(gateway.received_of("tool_result")) == 3

    assert turn.results["c1"].output == {"files": ["src/auth.js"]}
    assert "+// Logged." in turn.results["c2"].output["diff"]
    assert turn.results["c3"].error is not None
    assert turn.results["c3"].error.code == "invalid_arguments"
    assert "// Logged.\n" in (root / "src" / "auth.js").read_text()
    printed = out.getvalue()
    assert "[tool] apply_patch -> ok (src/auth.js)\n" in printed
    assert "[tool] git.diff -> ok\ndiff --git a/src/auth.js b/src/auth.js\n" in printed


async def test_client_returns_the_error_state_when_the_turn_fails(tools: ToolRunner) -> None:
    async def script(peer: Peer) -> None:
        await peer.accept_hello()
        await peer.expect("user_message")
        await peer.state("streaming", "idle")
        await peer.event("agent_delta", turn_id="t1", text="Partial")
        await peer.event("error", code="llm_timeout", message="the model stalled", source="llm")
        await peer.state("error", "streaming")
        await peer.wait_closed()

    out = io.StringIO()
    async with FakeGateway(script) as gateway, client_for(gateway, tools, out) as client:
        turn = await client.run_turn("hi")

    assert turn.state is SessionState.ERROR and not turn.ok
    assert [error.code for error in turn.of_type(Error)] == ["llm_timeout"]
    assert out.getvalue() == (
        "Partial\n[error] llm/llm_timeout: the model stalled\n[turn ended: error]\n"
    )


async def test_client_ends_the_turn_when_the_gateway_refuses_the_message(
    tools: ToolRunner,
) -> None:
    async def script(peer: Peer) -> None:
        await peer.accept_hello()
        message = await peer.expect("user_message")
        await peer.reply(
            "error",
            code="busy",
            message="a turn is running",
            source="protocol",
            fatal=False,
            id=message["id"],
        )
        await peer.wait_closed()

    async with FakeGateway(script) as gateway, client_for(gateway, tools) as client:
        turn = await client.run_turn("hi")

    assert turn.state is None and not turn.ok
    assert [error.code for error in turn.of_type(Error)] == ["busy"]


async def test_client_sends_cancel_when_its_turn_is_cancelled(tools: ToolRunner) -> None:
    started = asyncio.Event()

    async def script(peer: Peer) -> None:
        await peer.accept_hello()
        await peer.expect("user_message")
        await peer.state("streaming", "idle")
        started.set()
        await peer.expect("cancel")
        await peer.wait_closed()

    async with FakeGateway(script) as gateway:
        async with client_for(gateway, tools) as client:
            task = asyncio.create_task(client.run_turn("long job"))
            await asyncio.wait_for(started.wait(), 10)
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert gateway.received_of("cancel")


async def test_client_resumes_after_the_connection_drops_and_skips_replayed_events(
    tools: ToolRunner,
) -> None:
    async def script(peer: Peer) -> None:
        if peer.gateway.connections == 1:
            await peer.accept_hello()
            await peer.expect("user_message")
            await peer.state("streaming", "idle")
            await peer.event("agent_delta", turn_id="t1", text="Hello ")
            peer.drop()
            return
        hello = await peer.accept_hello(resumed=True)
        assert hello["session_id"] == "s_1" and hello["last_seq"] == 2
        await peer.replay(2)
        await peer.event("agent_delta", turn_id="t1", text="again.")
        await peer.event(
            "agent_message",
            turn_id="t1",
            content="Hello again.",
            finish_reason="stop",
            usage={"prompt_tokens": 1, "completion_tokens": 2},
        )
        await peer.state("done", "streaming")
        await peer.wait_closed()

    out = io.StringIO()
    async with FakeGateway(script) as gateway, client_for(gateway, tools, out) as client:
        turn = await client.run_turn("hi")

    assert turn.ok and turn.text == "Hello again."
    assert seqs(turn.frames) == [1, 2, 3, 4, 5]
    assert any(isinstance(frame, Session) and frame.resumed for frame in turn.frames)
    assert "resuming session s_1 after event 2" in out.getvalue()


async def test_client_answers_a_call_offered_again_after_resume_without_running_it_twice(
    tools: ToolRunner, root: Path
) -> None:
    async def script(peer: Peer) -> None:
        if peer.gateway.connections == 1:
            await peer.accept_hello()
            await peer.expect("user_message")
            await peer.state("streaming", "idle")
            await peer.event(
                "tool_call", call_id="c1", tool="apply_patch", arguments={"diff": ADD_LINE}
            )
            await peer.state("awaiting_tool", "streaming")
            await peer.expect("tool_result")
            peer.drop()
            return
        hello = await peer.accept_hello(resumed=True)
        assert hello["last_seq"] == 3
        await peer.replay(2)
        result = await peer.expect("tool_result")
        assert result["ok"] is True and result["output"] == {"files": ["src/auth.js"]}
        await peer.state("streaming", "awaiting_tool")
        await peer.finish_turn(["Patched."])
        await peer.wait_closed()

    async with FakeGateway(script) as gateway, client_for(gateway, tools) as client:
        turn = await client.run_turn("patch")

    assert turn.ok
    assert (root / "src" / "auth.js").read_text().count("// Logged.") == 1
    assert [frame.call_id for frame in turn.of_type(ToolCall)] == ["c1"]


async def test_client_gives_up_when_every_resume_drops_again(tools: ToolRunner) -> None:
    async def script(peer: Peer) -> None:
        await peer.accept_hello(resumed=peer.gateway.connections > 1)
        if peer.gateway.connections == 1:
            await peer.expect("user_message")
            await peer.state("streaming", "idle")
        peer.drop()

    async with FakeGateway(script) as gateway:
        client = IdeClient(gateway.url, TOKEN, tools, reconnect_attempts=3)
        async with client:
            with pytest.raises(GatewayError) as caught:
                await client.run_turn("hi")
        assert gateway.connections == 4
    assert caught.value.code == GatewayCode.CONNECTION_LOST


async def test_client_does_not_reconnect_when_another_connection_took_the_session_over(
    tools: ToolRunner,
) -> None:
    async def script(peer: Peer) -> None:
        await peer.accept_hello()
        await peer.expect("user_message")
        await peer.state("streaming", "idle")
        await peer.connection.close(4001, "session taken over")

    async with FakeGateway(script) as gateway, client_for(gateway, tools) as client:
        with pytest.raises(GatewayError) as caught:
            await client.run_turn("hi")
        assert gateway.connections == 1
    assert caught.value.code == GatewayCode.CONNECTION_LOST
    assert "4001" in caught.value.message


async def test_client_raises_unauthorized_when_the_gateway_refuses_the_token(
    tools: ToolRunner,
) -> None:
    async def script(peer: Peer) -> None:
        raise AssertionError("no connection may be upgraded without the token")

    async with FakeGateway(script) as gateway:
        with pytest.raises(GatewayError) as caught:
            await IdeClient(gateway.url, "wrong", tools).connect()
    assert caught.value.code == GatewayCode.UNAUTHORIZED
    assert caught.value.message == "the gateway refused the token (HTTP 401)"


async def test_client_raises_unreachable_when_nothing_listens(tools: ToolRunner) -> None:
    async def script(peer: Peer) -> None:
        raise AssertionError("unused")

    async with FakeGateway(script) as gateway:
        url = gateway.url
    with pytest.raises(GatewayError) as caught:
        await IdeClient(url, TOKEN, tools, open_timeout=2).connect()
    assert caught.value.code == GatewayCode.UNREACHABLE


async def test_client_raises_bad_frame_when_the_gateway_breaks_the_protocol(
    tools: ToolRunner,
) -> None:
    async def script(peer: Peer) -> None:
        await peer.accept_hello()
        await peer.expect("user_message")
        await peer.reply("state", state="dancing")
        await peer.wait_closed()

    async with FakeGateway(script) as gateway, client_for(gateway, tools) as client:
        with pytest.raises(GatewayError) as caught:
            await client.run_turn("hi")
    assert caught.value.code == GatewayCode.BAD_FRAME


async def test_client_reports_the_refusal_when_a_resume_names_an_unknown_session(
    tools: ToolRunner,
) -> None:
    async def script(peer: Peer) -> None:
        await peer.expect("hello")
        await peer.reply(
            "error",
            code="unknown_session",
            message="no session s_9",
            source="protocol",
            fatal=False,
        )
        await peer.wait_closed()

    async with FakeGateway(script) as gateway:
        client = IdeClient(gateway.url, TOKEN, tools, session_id="s_9", last_seq=4)
        with pytest.raises(GatewayError) as caught:
            await client.connect()
        await client.close()
        assert gateway.received[0]["session_id"] == "s_9"
        assert gateway.received[0]["last_seq"] == 4
    assert caught.value.code == "unknown_session"


async def refuse_as_orchestrator_unavailable(peer: Peer) -> None:
    """What the gateway does while the orchestrator is down: a fatal error, then close 1011."""
    await peer.reply(
        "error",
        code="orchestrator_unavailable",
        message="cannot reach the orchestrator",
        source="protocol",
        fatal=True,
    )
    await peer.connection.close(1011, "orchestrator unavailable")


async def test_client_keeps_reconnecting_while_the_orchestrator_is_unavailable(
    tools: ToolRunner,
) -> None:
    async def script(peer: Peer) -> None:
        if peer.gateway.connections == 1:
            await peer.accept_hello()
            await peer.expect("user_message")
            await peer.state("streaming", "idle")
            peer.drop()
        elif peer.gateway.connections < 6:
            await refuse_as_orchestrator_unavailable(peer)
        else:
            await peer.accept_hello(resumed=True)
            await peer.finish_turn(["Back."])
            await peer.wait_closed()

    out = io.StringIO()
    async with FakeGateway(script) as gateway, client_for(gateway, tools, out) as client:
        turn = await client.run_turn("hi")
        assert gateway.connections == 6
    assert turn.ok and turn.text == "Back."
    assert seqs(turn.frames) == [1, 2, 3, 4]


async def test_client_gives_up_once_the_reconnect_window_is_spent(tools: ToolRunner) -> None:
    async def script(peer: Peer) -> None:
        if peer.gateway.connections == 1:
            await peer.accept_hello()
            await peer.expect("user_message")
            await peer.state("streaming", "idle")
            peer.drop()
        else:
            await refuse_as_orchestrator_unavailable(peer)

    async with FakeGateway(script) as gateway:
        client = IdeClient(gateway.url, TOKEN, tools, reconnect_window=1.0)
        async with client:
            with pytest.raises(GatewayError) as caught:
                await client.run_turn("hi")
        assert 2 < gateway.connections < 10
    assert caught.value.code == GatewayCode.CONNECTION_LOST
    assert "within 1 s" in caught.value.message
    assert "orchestrator" in caught.value.message


async def test_a_message_typed_while_the_connection_is_down_is_sent_after_the_resume(
    tools: ToolRunner,
) -> None:
    closed = asyncio.Event()

    async def script(peer: Peer) -> None:
        if peer.gateway.connections == 1:
            await peer.accept_hello()
            await peer.connection.close(1012, "service restart")
            closed.set()
        elif peer.gateway.connections == 2:
            await refuse_as_orchestrator_unavailable(peer)
        else:
            hello = await peer.accept_hello(resumed=True)
            assert hello["session_id"] == "s_1"
            message = await peer.expect("user_message")
            assert message["content"] == "typed while disconnected"
            await peer.state("streaming", "idle")
            await peer.finish_turn(["Got it."])
            await peer.wait_closed()

    async with FakeGateway(script) as gateway, client_for(gateway, tools) as client:
        await closed.wait()
        turn = await client.run_turn("typed while disconnected")
        assert gateway.connections == 3
    assert turn.ok and turn.text == "Got it."
    assert len(gateway.received_of("user_message")) == 1


async def test_client_starts_a_new_session_when_the_restarted_service_forgot_it(
    tools: ToolRunner,
) -> None:
    closed = asyncio.Event()

    async def script(peer: Peer) -> None:
        if peer.gateway.connections == 1:
            await peer.accept_hello()
            await peer.connection.close(1012, "service restart")
            closed.set()
            return
        hello = await peer.expect("hello")
        if "session_id" in hello:
            await peer.reply(
                "error", code="unknown_session", message="no such session", source="protocol"
            )
            await peer.connection.close(1008)
            return
        await peer.reply(
            "session", session_id="s_new", state="idle", last_seq=0, resumed=False, tools=[]
        )
        message = await peer.expect("user_message")
        assert message["content"] == "hello again"
        await peer.state("streaming", "idle")
        await peer.finish_turn(["New."])
        await peer.wait_closed()

    out = io.StringIO()
    async with FakeGateway(script) as gateway, client_for(gateway, tools, out) as client:
        await closed.wait()
        turn = await client.run_turn("hello again")
    assert turn.ok and turn.text == "New." and client.session_id == "s_new"
    assert len(gateway.received_of("user_message")) == 1
    assert "session s_1 is gone" in out.getvalue()
