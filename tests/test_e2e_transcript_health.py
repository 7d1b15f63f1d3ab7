"""The orchestrator's transcript store when it cannot write: a full disk (the process's file
size limit lowered under it, so every write past the first byte fails with EFBIG) makes
/healthz degraded, is logged once per change, and SIGTERM still exits 0; a --transcripts path
that cannot be used at start is a one-line error and exit 2."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.fake_upstream import FakeUpstream, text_stream
from tests.support.procs import ROOT, free_port, wait_healthy
from tests.support.wsclient import ProtocolClient


class Orchestrator:
    """The orchestrator process with its log on a pipe (a file limit does not apply to it)."""

    def __init__(self, db: Path, upstream: FakeUpstream) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agent_service",
                "orchestrator",
                f"--orchestrator-port={self.port}",
                f"--transcripts={db}",
                f"--llm-base-url={upstream.base_url}",
                "--model=fake-model",
            ],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_healthy(self.health_url, process=self.proc)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/healthz"

    def health(self) -> tuple[int, dict[str, object]]:
        try:
            with urllib.request.urlopen(self.health_url, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def limit_file_size(self, size: int) -> None:
        resource.prlimit(self.proc.pid, resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))

    def lift_file_size_limit(self) -> None:
        unlimited = resource.RLIM_INFINITY
        resource.prlimit(self.proc.pid, resource.RLIMIT_FSIZE, (unlimited, unlimited))

    def logged(self, message: str) -> int:
        return sum(1 for line in self.lines if f'"msg": "{message}' in line)

    async def turn(self) -> None:
        client = await ProtocolClient.connect(f"ws://127.0.0.1:{self.port}/v1/link", None)
        await client.hello()
        frames = await client.run_turn("hello")
        await client.close()
        assert frames[-1]["state"] == "done"


async def test_a_store_that_cannot_write_is_health_degraded_logged_once_and_exits_0(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    upstream.reset(lambda request: text_stream("All fine."))
    orchestrator = Orchestrator(tmp_path / "t.db", upstream)
    try:
        await orchestrator.turn()
        assert orchestrator.health()[0] == 200

        orchestrator.limit_file_size(1)
        for _ in range(3):
            await orchestrator.turn()
        status, body = orchestrator.health()
        assert (status, body["status"]) == (503, "degraded") and body["transcripts"]
        assert orchestrator.logged("transcript store cannot write") == 1

        orchestrator.lift_file_size_limit()
        await orchestrator.turn()
        assert orchestrator.health()[0] == 200
        assert orchestrator.logged("transcript store writes again") == 1

        orchestrator.limit_file_size(1)
        await orchestrator.turn()
        assert orchestrator.health()[0] == 503
        orchestrator.proc.send_signal(signal.SIGTERM)
        assert orchestrator.proc.wait(30) == 0
    finally:
        if orchestrator.proc.poll() is None:
            orchestrator.proc.kill()
            orchestrator.proc.wait()
    orchestrator._reader.join(5)
    output = "".join(orchestrator.lines)
    assert orchestrator.logged("transcript store cannot write") == 2
    assert orchestrator.logged("transcript rows lost at shutdown") == 1
    assert "Traceback" not in output


@pytest.mark.parametrize("kind", ["missing directory", "a directory", "not a database"])
def test_an_unusable_transcripts_path_is_one_line_and_exit_2(tmp_path: Path, kind: str) -> None:
    path = {
        "missing directory": tmp_path / "no" / "such" / "t.db",
        "a directory": tmp_path,
        "not a database": tmp_path / "notes.txt",
    }[kind]
    if kind == "not a database":
        path.write_text("these are notes, not SQLite\n" * 100)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent_service",
            "orchestrator",
            f"--orchestrator-port={free_port()}",
            f"--transcripts={path}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    errors = [line for line in done.stderr.splitlines() if not line.startswith("{")]
    assert done.returncode == 2, done.stderr
    assert len(errors) == 1 and errors[0].startswith("agent-service orchestrator: "), done.stderr
    assert "Traceback" not in done.stderr


def test_up_in_process_with_an_unusable_transcripts_path_is_one_line_and_exit_2(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent_service",
            "up",
            "--in-process",
            f"--gateway-port={free_port()}",
            f"--transcripts={tmp_path / 'no' / 't.db'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "agent-service up: cannot open" in done.stderr
