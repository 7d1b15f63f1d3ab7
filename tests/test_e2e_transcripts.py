"""Recording through the live orchestrator: sessions land in SQLite and replay exactly."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from agent_service.stack import ServiceStack
from ide_client.sample import create_sample_workspace
from ide_client.tools import ToolRunner
from ide_client.workspace import Workspace
from tests.support.stack import running_stack, stack_config
from tests.support.wsclient import Frame, ProtocolClient

ROOT = Path(__file__).resolve().parents[1]


def agent_service(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent_service", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def run_demo_turn(gateway_url: str, token: str, workspace: Path) -> list[Frame]:
    runner = ToolRunner(Workspace(workspace))

    async def answer(frame: Frame) -> Frame:
        output = runner.run(frame["tool"], frame["arguments"])
        return {"type": "tool_result", "call_id": frame["call_id"], "ok": True, "output": output}

    client = await ProtocolClient.connect(gateway_url, token)
    await client.hello()
    frames = await client.run_turn("Add logging to src/auth.js", answer)
    await client.close()
    return frames


async def test_session_recorded_by_the_live_stack_replays_exactly(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    workspace = create_sample_workspace(tmp_path / "ws")
    with running_stack(tmp_path, extra_args={"orchestrator": ["--transcripts", str(db)]}) as config:
        frames = await run_demo_turn(config.gateway_url, config.token, workspace)
    session_id = frames[0]["session_id"]

    assert (db.stat().st_mode & 0o777) == 0o600
    listed = agent_service("transcripts", "list", "--db", str(db))
    assert listed.returncode == 0 and session_id in listed.stdout
    verified = agent_service("replay", "--all", "--verify", "--db", str(db))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    exported = agent_service(
        "transcripts", "export", session_id, "--format", "jsonl", "--db", str(db)
    )
    assert exported.returncode == 0
    assert config.token not in db.read_bytes().decode("latin-1")


async def test_sigkilled_orchestrator_leaves_every_flushed_event_readable(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    workspace = create_sample_workspace(tmp_path / "ws")
    config = replace(
        stack_config(),
        extra_args={
            "llm-proxy": ["--demo-delay-ms", "0"],
            "orchestrator": ["--transcripts", str(db)],
        },
    )
    with (tmp_path / "stack.log").open("ab") as log:
        stack = ServiceStack(config, output=log)
        stack.start()
        try:
            frames = await run_demo_turn(config.gateway_url, config.token, workspace)
            killed = subprocess.run(
                ["fuser", "-k", "-KILL", f"{config.orchestrator_port}/tcp"], capture_output=True
            )
            assert killed.returncode == 0
        finally:
            codes = stack.stop()
    assert codes["orchestrator"] == -signal.SIGKILL
    assert codes["gateway"] == 0 and codes["llm-proxy"] == 0

    session_id = frames[0]["session_id"]
    with sqlite3.connect(db) as connection:
        (integrity,) = connection.execute("PRAGMA integrity_check").fetchone()
        rows = connection.execute(
            "SELECT COUNT(*) FROM events WHERE session_id = ?", (session_id,)
        ).fetchone()[0]
    assert integrity == "ok"
    numbered_events = [frame for frame in frames if "seq" in frame]
    assert rows > len(numbered_events), "the finished turn was flushed before the kill"
    verified = agent_service("replay", session_id, "--verify", "--db", str(db))
    assert verified.returncode == 0, verified.stdout + verified.stderr
