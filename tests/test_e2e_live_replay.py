"""Live replay: a session recorded through the three services, re-run through them from its
transcript (the proxy serving the recorded model, the IDE answering from the recording)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ide_client.sample import create_sample_workspace
from ide_client.tools import ToolRunner
from ide_client.workspace import Workspace
from orchestrator.core import CoreConfig
from orchestrator.events import CancelRequested, UserMessageReceived
from tests.support.procs import ROOT, ServiceProcess, free_port, running
from tests.support.proxy_process import running_proxy
from tests.support.recorded_session import SessionDriver
from tests.support.stack import TEST_TOKEN, running_stack
from tests.support.wsclient import Frame, ProtocolClient
from transcripts import TranscriptRecorder, TranscriptStore
from wire import ToolCall, encode

# a live replay re-runs a session from the transcripts file of the one orchestrator
pytestmark = pytest.mark.single_machine

MESSAGES = ("Add logging to src/auth.js", "Add logging to src/missing.js")


@dataclass(frozen=True)
class Recorded:
    """A demo session recorded through the live stack."""

    db: Path
    session_id: str


def agent_service(*args: str) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("AGENT_")}
    return subprocess.run(
        [sys.executable, "-m", "agent_service", *args],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=90,
    )


async def drive_demo_session(gateway_url: str, token: str, workspace: Path) -> str:
    """Two turns: one that reads, patches and diffs a file, one whose read_file fails."""
    runner = ToolRunner(Workspace(workspace))

    async def answer(frame: Frame) -> Frame:
        result: Frame = json.loads(encode(runner.answer(ToolCall.model_validate(frame))))
        return result

    client = await ProtocolClient.connect(gateway_url, token)
    session = await client.hello()
    for number, message in enumerate(MESSAGES, start=1):
        await client.run_turn(message, answer, message_id=f"m{number}")
    await client.close()
    return str(session["session_id"])


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    work = tmp_path_factory.mktemp("recording")
    db = work / "recorded.db"
    workspace = create_sample_workspace(work / "workspace")
    with running_stack(work, extra_args={"orchestrator": ["--transcripts", str(db)]}) as config:
        session_id = asyncio.run(drive_demo_session(config.gateway_url, config.token, workspace))
    return Recorded(db, session_id)


def transcript_rows(db: Path, session_id: str) -> list[tuple[str, Any]]:
    """Every row of a session (kind, payload), with the session's own id left out."""
    store = TranscriptStore.open(db)
    try:
        rows = []
        for row in store.events(session_id):
            payload = json.loads(row.payload)
            if payload["type"] == "emit_event":
                payload["event"].pop("session_id")
            rows.append((row.kind, payload))
        return rows
    finally:
        store.close()


def text_merged(rows: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The rows with seq left out and each run of text as one (model deltas in, each with the
    `agent_delta` it emitted): how a stream splits into reads depends on timing."""
    merged: list[tuple[str, Any]] = []
    for kind, payload in rows:
        if payload["type"] == "emit_event":
            payload = {**payload, "event": {**payload["event"], "seq": None}}
        kinds = [_text_kind(row) for _, row in merged[-2:]]
        if kinds == ["in", "out"] and _text_kind(payload) is not None:
            into = merged[-2 if _text_kind(payload) == "in" else -1][1]
            if payload["type"] == "llm_delta":
                into["text"] += payload["text"]
            else:
                into["event"]["text"] += payload["event"]["text"]
        else:
            merged.append((kind, payload))
    return merged


def _text_kind(payload: dict[str, Any]) -> str | None:
    if payload["type"] == "llm_delta":
        return "in"
    if payload["type"] == "emit_event" and payload["event"]["type"] == "agent_delta":
        return "out"
    return None


def only_session(db: Path) -> str:
    store = TranscriptStore.open(db)
    try:
        (session,) = store.sessions()
        return session.session_id
    finally:
        store.close()


def replay_ide(recorded: Recorded, gateway_url: str) -> subprocess.CompletedProcess[str]:
    return agent_service(
        "ide",
        "--replay",
        recorded.session_id,
        "--db",
        str(recorded.db),
        "--url",
        gateway_url,
        "--token",
        TEST_TOKEN,
    )


def test_ide_replay_matches_the_recording_when_up_serves_the_recorded_model(
    recorded: Recorded, tmp_path: Path
) -> None:
    rerun_db = tmp_path / "rerun.db"
    gateway_port = free_port()
    up = ServiceProcess(
        [
            "up",
            "--gateway-port",
            str(gateway_port),
            "--orchestrator-port",
            str(free_port()),
            "--proxy-port",
            str(free_port()),
            "--token",
            TEST_TOKEN,
            "--replay",
            str(recorded.db),
            "--replay-session",
            recorded.session_id,
            "--transcripts",
            str(rerun_db),
        ],
        f"http://127.0.0.1:{gateway_port}/healthz",
        tmp_path / "up.log",
    )
    with running(up):
        finished = replay_ide(recorded, f"ws://127.0.0.1:{gateway_port}/v1/ws")

    assert finished.returncode == 0, finished.stdout + finished.stderr
    expected = transcript_rows(recorded.db, recorded.session_id)
    emitted = sum(1 for kind, payload in expected if payload["type"] == "emit_event")
    assert f"{emitted} events match the recording" in finished.stdout
    rerun_id = only_session(rerun_db)
    assert rerun_id != recorded.session_id
    assert text_merged(transcript_rows(rerun_db, rerun_id)) == text_merged(expected)


def test_ide_replay_names_the_first_differing_event_when_the_rerun_diverges(
    recorded: Recorded, tmp_path: Path
) -> None:
    clipped = ["--max-tool-output", "100"]
    with running_stack(
        tmp_path,
        extra_args={
            "llm-proxy": ["--replay", str(recorded.db), "--replay-session", recorded.session_id],
            "orchestrator": clipped,
        },
    ) as config:
        finished = replay_ide(recorded, config.gateway_url)

    assert finished.returncode == 1, finished.stdout + finished.stderr
    report = finished.stdout[finished.stdout.index("DIVERGED") :]
    rows = transcript_rows(recorded.db, recorded.session_id)
    second_request = next(
        index
        for index, (kind, payload) in enumerate(rows)
        if payload["type"] == "start_llm_request" and payload["request_id"] == "t1.2"
    )
    # the first event that differs: the size of the request that carries the clipped output
    context_of_second_request = next(
        payload["event"]
        for kind, payload in reversed(rows[:second_request])
        if payload["type"] == "emit_event" and payload["event"]["type"] == "context"
    )
    assert f"(recorded seq {context_of_second_request['seq']}):" in report
    assert f"context (seq {context_of_second_request['seq']}), recorded vs live" in report
    assert f"tokens: expected {context_of_second_request['tokens']} got " in report


def test_replay_proxy_refuses_a_request_the_recording_lacks_naming_the_difference(
    recorded: Recorded, tmp_path: Path
) -> None:
    first_request = next(
        payload
        for kind, payload in transcript_rows(recorded.db, recorded.session_id)
        if payload["type"] == "start_llm_request"
    )
    messages = first_request["messages"]
    messages[1]["content"] = "Add logging to src/other.js"

    with running_proxy(
        tmp_path, "--replay", str(recorded.db), "--replay-session", recorded.session_id
    ) as proxy:
        with urllib.request.urlopen(f"{proxy.base_url}/models", timeout=10) as listed:
            (model,) = [entry["id"] for entry in json.loads(listed.read())["data"]]
        body = {
            "model": model,
            "messages": messages,
            "tools": first_request["tools"],
            "stream": True,
        }
        request = urllib.request.Request(
            f"{proxy.base_url}/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)

    assert refused.value.code == 409
    error = json.loads(refused.value.read())["error"]
    assert error["code"] == "replay_mismatch"
    assert error["param"] == "messages[1].content"
    assert '"Add logging to src/auth.js"' in error["message"]
    assert '"Add logging to src/other.js"' in error["message"]


def test_ide_replay_refuses_a_session_its_user_cancelled(tmp_path: Path) -> None:
    db = tmp_path / "cancelled.db"
    recorder = TranscriptRecorder(db)
    driver = SessionDriver.start(recorder, "s_cancelled", CoreConfig())
    driver.feed(UserMessageReceived("Add logging to src/auth.js", "m1"))
    driver.feed(CancelRequested("x1"))
    recorder.close()

    finished = agent_service(
        "ide", "--replay", "s_cancelled", "--db", str(db), "--token", TEST_TOKEN
    )

    assert finished.returncode == 2
    assert "s_cancelled was cancelled by its user" in finished.stderr
    assert "[replay_unsupported]" in finished.stderr


def test_ide_replay_refuses_a_session_whose_user_steered_or_decided_approvals(
    tmp_path: Path,
) -> None:
    db = tmp_path / "controlled.db"
    recorder = TranscriptRecorder(db)
    config = CoreConfig(approval="ask", features=("approvals",))
    driver = SessionDriver.start(recorder, "s_controlled", config)
    driver.feed(UserMessageReceived("Add logging to src/auth.js", "m1"))
    recorder.close()

    finished = agent_service(
        "ide", "--replay", "s_controlled", "--db", str(db), "--token", TEST_TOKEN
    )

    assert finished.returncode == 2
    assert "s_controlled used approvals, steering or reverts" in finished.stderr
    assert "[replay_unsupported]" in finished.stderr
