"""The whole pipeline through real processes: IDE client → gateway → orchestrator → llm-proxy → back."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from agent_service.stack import StackConfig
from ide_client.errors import ToolFailure
from ide_client.sample import create_sample_workspace
from ide_client.tools import ToolRunner
from ide_client.workspace import Workspace
from tests.support.fake_credentials import UPSTREAM_API_KEY
from tests.support.fake_upstream import FakeUpstream, Step, text_stream, tool_call_stream
from tests.support.procs import ServiceProcess, free_port, running, wait_healthy
from tests.support.protocol_schema import assert_server_frame
from tests.support.stack import running_stack
from tests.support.wsclient import Frame, ProtocolClient, numbered

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackConfig]:
    with running_stack(tmp_path_factory.mktemp("demo-stack")) as config:
        yield config


def tool_answerer(workspace: Path, calls: list[Frame]) -> Any:
    runner = ToolRunner(Workspace(workspace))

    async def answer(frame: Frame) -> Frame:
        calls.append(frame)
        try:
            output = await asyncio.to_thread(runner.run, frame["tool"], frame["arguments"])
        except ToolFailure as failure:
            error = {"code": str(failure.code), "message": str(failure)}
            return {"type": "tool_result", "call_id": frame["call_id"], "ok": False, "error": error}
        return {"type": "tool_result", "call_id": frame["call_id"], "ok": True, "output": output}

    return answer


def states(frames: list[Frame]) -> list[str]:
    return [frame["state"] for frame in frames if frame["type"] == "state"]


def assert_seq_continuous(frames: list[Frame], first: int = 1) -> None:
    seqs = [frame["seq"] for frame in numbered(frames)]
    assert seqs == list(range(first, first + len(seqs)))


def assert_deltas_make_the_message(frames: list[Frame]) -> Frame:
    messages = [frame for frame in frames if frame["type"] == "agent_message"]
    assert len(messages) == 1
    message = messages[0]
    deltas = [
        f["text"]
        for f in frames
        if f["type"] == "agent_delta" and f["turn_id"] == message["turn_id"]
    ]
    assert "".join(deltas) == message["content"]
    return message


async def test_demo_scenario_adds_logging_through_the_whole_stack(
    demo_stack: StackConfig, tmp_path: Path
) -> None:
    workspace = create_sample_workspace(tmp_path / "ws")
    original = (workspace / "src/auth.js").read_text()
    client = await ProtocolClient.connect(demo_stack.gateway_url, demo_stack.token)
    session = await client.hello()
    assert session["tools"] == ["read_file", "write_file", "git.diff", "apply_patch"]
    calls: list[Frame] = []
    frames = await client.run_turn("Add logging to src/auth.js", tool_answerer(workspace, calls))
    await client.close()

    assert [call["tool"] for call in calls] == ["read_file", "apply_patch", "git.diff"]
    assert calls[0]["arguments"] == {"path": "src/auth.js"}
    patched = (workspace / "src/auth.js").read_text()
    assert patched != original and "console.log" in patched
    diff = subprocess.run(["git", "diff"], cwd=workspace, capture_output=True, text=True).stdout
    assert "+" in diff and "console.log" in diff
    assert_seq_continuous(frames)
    assert states(frames) == [
        "streaming",
        "awaiting_tool",
        "streaming",
        "awaiting_tool",
        "streaming",
        "awaiting_tool",
        "streaming",
        "done",
    ]
    message = assert_deltas_make_the_message(frames)
    assert message["finish_reason"] == "stop"
    assert not [frame for frame in frames if frame["type"] == "error"]


async def test_next_user_message_continues_the_session_with_seq_unbroken(
    demo_stack: StackConfig,
) -> None:
    client = await ProtocolClient.connect(demo_stack.gateway_url, demo_stack.token)
    await client.hello()
    first = await client.run_turn("hello there", message_id="m1")
    second = await client.run_turn("what are you?", message_id="m2")
    await client.close()
    assert_seq_continuous(first + second)
    assert states(first) == ["streaming", "done"] and states(second) == ["streaming", "done"]
    first_message = assert_deltas_make_the_message(first)
    second_message = assert_deltas_make_the_message(second)
    assert (first_message["turn_id"], second_message["turn_id"]) == ("t1", "t2")
    assert "demo model" in first_message["content"]


async def test_ide_tool_error_reaches_the_user_and_the_model_continues(
    demo_stack: StackConfig, tmp_path: Path
) -> None:
    workspace = create_sample_workspace(tmp_path / "ws")
    client = await ProtocolClient.connect(demo_stack.gateway_url, demo_stack.token)
    await client.hello()
    calls: list[Frame] = []
    frames = await client.run_turn("Add logging to src/missing.js", tool_answerer(workspace, calls))
    await client.close()

    errors = [frame for frame in frames if frame["type"] == "error"]
    assert len(errors) == 1
    assert errors[0]["source"] == "ide" and errors[0]["code"] == "not_found"
    assert errors[0]["call_id"] == calls[0]["call_id"] and errors[0]["fatal"] is False
    message = assert_deltas_make_the_message(frames)
    assert "not_found" in message["content"] or "could not" in message["content"].lower()
    assert states(frames)[-1] == "done"
    assert_seq_continuous(frames)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token"}, {"Authorization": "Basic dGVzdA=="}],
    ids=["missing", "wrong", "not-bearer"],
)
async def test_gateway_answers_401_without_upgrade_when_token_is_missing_or_wrong(
    demo_stack: StackConfig, headers: dict[str, str]
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await connect(demo_stack.gateway_url, additional_headers=headers)
    assert refused.value.response.status_code == 401


async def test_gateway_never_accepts_the_token_in_the_query_string(demo_stack: StackConfig) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await connect(f"{demo_stack.gateway_url}?token={demo_stack.token}")
    assert refused.value.response.status_code == 401


async def test_browser_client_authenticates_with_the_bearer_subprotocol(
    demo_stack: StackConfig,
) -> None:
    async with connect(
        demo_stack.gateway_url, subprotocols=["agent.v1", f"bearer.{demo_stack.token}"]
    ) as websocket:
        assert websocket.subprotocol == "agent.v1"
        await websocket.send(json.dumps({"type": "hello", "protocol": 1}))
        reply = json.loads(await websocket.recv())
        assert_server_frame(reply)
        assert reply["type"] == "session"


async def test_split_tool_call_arguments_from_a_real_upstream_are_reassembled(
    tmp_path: Path,
) -> None:
    arguments = json.dumps({"path": "src/auth.js"})

    def script(request: dict[str, Any]) -> list[Step]:
        if request["messages"][-1]["role"] == "tool":
            return text_stream("The file has three functions.", usage=(10, 6))
        return tool_call_stream([("read_file", arguments)], pieces=len(arguments), usage=(9, 4))

    workspace = create_sample_workspace(tmp_path / "ws")
    with (
        FakeUpstream(script) as upstream,
        running_stack(tmp_path, llm_base_url=upstream.base_url, model="fake-model") as config,
    ):
        client = await ProtocolClient.connect(config.gateway_url, config.token)
        await client.hello()
        calls: list[Frame] = []
        frames = await client.run_turn("What is in auth.js?", tool_answerer(workspace, calls))
        await client.close()
        upstream_requests = list(upstream.requests)

    assert [(call["tool"], call["arguments"]) for call in calls] == [
        ("read_file", {"path": "src/auth.js"})
    ]
    message = assert_deltas_make_the_message(frames)
    assert message["content"] == "The file has three functions."
    assert message["usage"] == {"prompt_tokens": 19, "completion_tokens": 10}
    second = upstream_requests[-1].json["messages"]
    assert second[-2]["tool_calls"][0]["function"]["arguments"] == arguments
    assert second[-1]["role"] == "tool" and "function login" in second[-1]["content"]
    assert upstream_requests[-1].headers.get("authorization") == f"Bearer {UPSTREAM_API_KEY}"


def test_ide_command_runs_one_turn_and_prints_tools_and_text(
    demo_stack: StackConfig, tmp_path: Path
) -> None:
    workspace = create_sample_workspace(tmp_path / "ws")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent_service",
            "ide",
            "--workspace",
            str(workspace),
            "--url",
            demo_stack.gateway_url,
            "--token",
            demo_stack.token,
            "Add logging to src/auth.js",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for tool in ("read_file", "apply_patch", "git.diff"):
        assert tool in result.stdout
    assert "console.log" in (workspace / "src/auth.js").read_text()


@pytest.mark.parametrize("mode", [[], ["--in-process"]], ids=["three-processes", "in-process"])
async def test_up_runs_the_stack_and_stops_cleanly_on_sigterm(
    tmp_path: Path, mode: list[str]
) -> None:
    ports = {name: free_port() for name in ("gateway", "orchestrator", "proxy")}
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent_service",
            "up",
            *mode,
            "--gateway-port",
            str(ports["gateway"]),
            "--orchestrator-port",
            str(ports["orchestrator"]),
            "--proxy-port",
            str(ports["proxy"]),
        ],
        cwd=ROOT,
        env={**os.environ, "AGENT_TOKEN": "up-token"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{ports['gateway']}/healthz", timeout_s=40, process=up)
        client = await ProtocolClient.connect(
            f"ws://127.0.0.1:{ports['gateway']}/v1/ws", "up-token"
        )
        await client.hello()
        frames = await client.run_turn("hello")
        await client.close()
        assert_deltas_make_the_message(frames)
    finally:
        up.send_signal(signal.SIGTERM)
        output = up.communicate(timeout=60)[0].decode(errors="replace")
    assert up.returncode == 0, output
    assert "up-token" not in output


def test_gateway_healthz_is_200_only_while_orchestrator_and_proxy_answer(
    demo_stack: StackConfig, tmp_path: Path
) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{demo_stack.gateway_port}/healthz") as ok:
        assert ok.status == 200
        # a gateway on a broker adds the orchestrators holding leases (docs/scale.md)
        healthy = json.loads(ok.read())
        assert healthy.items() >= {"status": "ok", "orchestrator": True, "llm_proxy": True}.items()

    port = free_port()
    lonely = ServiceProcess(
        [
            "gateway",
            "--gateway-port",
            str(port),
            "--orchestrator-url",
            f"ws://127.0.0.1:{free_port()}/v1/link",
            "--proxy-url",
            f"http://127.0.0.1:{demo_stack.proxy_port}",
        ],
        health_url=None,
        log_path=tmp_path / "gateway.log",
        env={"AGENT_TOKEN": "t"},
    )
    with running(lonely):
        body = poll_health(f"http://127.0.0.1:{port}/healthz", expected_status=503)
    assert body == {"status": "degraded", "orchestrator": False, "llm_proxy": True}


def poll_health(url: str, expected_status: int) -> dict[str, Any]:
    """The JSON body of `url` once it answers `expected_status` (the server may still be starting)."""
    for _ in range(200):
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as refused:
            status, body = refused.code, refused.read()
        except OSError:
            time.sleep(0.05)
            continue
        if status == expected_status:
            return dict(json.loads(body))
        time.sleep(0.05)
    raise AssertionError(f"{url} never answered {expected_status}")
