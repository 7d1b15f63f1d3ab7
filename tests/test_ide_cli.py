"""`agent-service ide` as a user runs it: a real process talking to a scripted gateway."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ide_client.sample import create_sample_workspace
from tests.support.fake_gateway import TOKEN, FakeGateway, Peer

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Finished:
    code: int
    stdout: str
    stderr: str


async def start_ide(*args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent_service",
        "ide",
        *args,
        cwd=ROOT,
        env={**clean, "PYTHONUNBUFFERED": "1", **(env or {})},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(process: asyncio.subprocess.Process, stdin: bytes = b"") -> Finished:
    async with asyncio.timeout(30):
        out, err = await process.communicate(stdin)
    assert process.returncode is not None
    return Finished(process.returncode, out.decode(), err.decode())


async def run_ide(*args: str, env: dict[str, str] | None = None, stdin: bytes = b"") -> Finished:
    return await finish(await start_ide(*args, env=env), stdin)


async def one_tool_turn(peer: Peer) -> None:
    """read_file, then a streamed answer, then done."""
    await peer.expect("user_message")
    await peer.state("streaming", "idle")
    await peer.event("tool_call", call_id="c1", tool="read_file", arguments={"path": "src/auth.js"})
    await peer.state("awaiting_tool", "streaming")
    result = await peer.expect("tool_result")
    assert result["ok"] is True
    await peer.state("streaming", "awaiting_tool")
    await peer.finish_turn(["Read ", "it."])


async def test_ide_runs_one_turn_and_exits_0_when_it_ends_done(tmp_path: Path) -> None:
    async def script(peer: Peer) -> None:
        await peer.accept_hello()
        await one_tool_turn(peer)
        await peer.wait_closed()

    workspace = tmp_path / "ws"
    async with FakeGateway(script) as gateway:
        done = await run_ide(
            "--workspace",
            str(workspace),
            "--create-sample",
            "--url",
            gateway.url,
            "Read it",
            env={"AGENT_TOKEN": TOKEN},
        )
    assert done.code == 0, done.stderr
    assert done.stdout == "[tool] read_file src/auth.js -> ok\nRead it.\n"
    assert (workspace / ".git").is_dir()


async def test_ide_exits_1_when_the_turn_ends_in_error(tmp_path: Path) -> None:
    async def script(peer: Peer) -> None:
        await peer.accept_hello()
        await peer.expect("user_message")
        await peer.state("streaming", "idle")
        await peer.event("error", code="llm_unavailable", message="no model", source="llm")
        await peer.state("error", "streaming")
        await peer.wait_closed()

    workspace = create_sample_workspace(tmp_path / "ws")
    async with FakeGateway(script) as gateway:
        done = await run_ide(
            "--workspace", str(workspace), "--url", gateway.url, "--token", TOKEN, "hi"
        )
    assert done.code == 1
    assert "[error] llm/llm_unavailable: no model" in done.stdout
    assert "[turn ended: error]" in done.stdout


async def test_ide_exits_2_with_a_clear_message_when_the_token_is_refused(tmp_path: Path) -> None:
    async def script(peer: Peer) -> None:
        raise AssertionError("must not be upgraded")

    workspace = create_sample_workspace(tmp_path / "ws")
    async with FakeGateway(script) as gateway:
        done = await run_ide(
            "--workspace", str(workspace), "--url", gateway.url, "--token", "nope", "hi"
        )
    assert done.code == 2
    assert "the gateway refused the token" in done.stderr
    assert "nope" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


async def test_ide_exits_2_when_the_gateway_is_unreachable(tmp_path: Path) -> None:
    async def script(peer: Peer) -> None:
        raise AssertionError("unused")

    async with FakeGateway(script) as gateway:
        url = gateway.url
    workspace = create_sample_workspace(tmp_path / "ws")
    done = await run_ide("--workspace", str(workspace), "--url", url, "--token", TOKEN, "hi")
    assert done.code == 2
    assert f"cannot reach the gateway at {url}" in done.stderr


async def test_ide_exits_2_and_asks_for_a_token_when_none_is_given(tmp_path: Path) -> None:
    done = await run_ide("--workspace", str(tmp_path), "hi")
    assert done.code == 2
    assert "no token: pass --token or set AGENT_TOKEN" in done.stderr


async def test_ide_exits_2_when_the_workspace_is_not_a_directory(tmp_path: Path) -> None:
    done = await run_ide("--workspace", str(tmp_path / "missing"), "--token", TOKEN, "hi")
    assert done.code == 2
    assert "is not a directory" in done.stderr


async def test_ide_runs_a_turn_per_line_and_quits_at_end_of_input(tmp_path: Path) -> None:
    messages: list[str] = []

    async def script(peer: Peer) -> None:
        await peer.accept_hello()
        await one_tool_turn(peer)
        message = await peer.expect("user_message")
        messages.append(message["content"])
        await peer.state("streaming", "done")
        await peer.event("agent_delta", turn_id="t2", text="Second.")
        await peer.event(
            "agent_message",
            turn_id="t2",
            content="Second.",
            finish_reason="stop",
            usage={"prompt_tokens": 1, "completion_tokens": 1},
        )
        await peer.state("done", "streaming")
        await peer.wait_closed()

    workspace = create_sample_workspace(tmp_path / "ws")
    async with FakeGateway(script) as gateway:
        process = await start_ide(
            "--workspace", str(workspace), "--url", gateway.url, "--token", TOKEN
        )
        done = await finish(process, b"first\n\nsecond one\n")
    assert done.code == 0, done.stderr
    assert messages == ["second one"]
    assert done.stdout == "[tool] read_file src/auth.js -> ok\nRead it.\nSecond.\n"
    assert "Session s_1" in done.stderr
    assert gateway.received_of("user_message")[0]["content"] == "first"


async def test_ide_cancels_the_turn_on_ctrl_c_and_quits_on_ctrl_c_at_the_prompt(
    tmp_path: Path,
) -> None:
    turn_started = asyncio.Event()

    async def script(peer: Peer) -> None:
        await peer.accept_hello()
        await peer.expect("user_message")
        await peer.state("streaming", "idle")
        turn_started.set()
        await peer.expect("cancel")
        await peer.state("idle", "streaming")
        await peer.wait_closed()

    workspace = create_sample_workspace(tmp_path / "ws")
    async with FakeGateway(script) as gateway:
        process = await start_ide(
            "--workspace", str(workspace), "--url", gateway.url, "--token", TOKEN
        )
        assert process.stdin is not None and process.stderr is not None
        process.stdin.write(b"a long job\n")
        await process.stdin.drain()
        await asyncio.wait_for(turn_started.wait(), 30)
        process.send_signal(signal.SIGINT)
        prompts = b""
        async with asyncio.timeout(30):
            while prompts.count(b"> ") < 2:
                prompts += await process.stderr.read(1)
        process.send_signal(signal.SIGINT)
        done = await finish(process)
    assert done.code == 0, done.stderr
    assert "[turn ended: cancelled]" in done.stdout
    assert "Traceback" not in done.stderr


def test_ide_help_lists_its_flags_and_exit_codes() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "agent_service", "ide", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    for flag in ("--workspace", "--url", "--token", "AGENT_TOKEN", "AGENT_GATEWAY_URL"):
        assert flag in shown
    assert "0 when the turn ends `done`" in shown


async def test_ide_refuses_to_create_the_sample_in_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "keep.txt").write_text("mine")
    done = await run_ide(
        "--workspace", str(tmp_path / "ws"), "--create-sample", "--token", TOKEN, "hi"
    )
    assert done.code == 2
    assert "not empty" in done.stderr
    assert (tmp_path / "ws" / "keep.txt").read_text() == "mine"
