"""Real service processes started by fork from a process that has imported everything already.

A test that kills and restarts a service a hundred times cannot pay Python's
start-up (over a second of CPU each here) every time. `ServiceForker` runs this
module as a child (`python -m tests.support.forked_service`); it imports the
product's CLI once, then for every request forks a process that runs
`agent-service <argv>` exactly as `python -m agent_service` would, in its own
session with its output in a log file. Each service is double-forked, so
init reaps it and the test may SIGKILL it at any moment.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType

from tests.support.procs import ROOT


def _serve_requests() -> None:
    """The forker's loop: one JSON request per stdin line, the new service's pid per line out."""
    from agent_service.cli import build_parser, main

    build_parser()  # imports every command's module before the first fork
    for line in sys.stdin:
        request = json.loads(line)
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(read_end)
            _start_service(request["argv"], request["log"], write_end, main)
        os.close(write_end)
        with os.fdopen(read_end) as reply:
            pid = reply.read().strip()
        os.waitpid(child, 0)
        print(pid, flush=True)


def _start_service(argv: list[str], log_path: str, reply: int, main: object) -> None:
    """In the first child: fork the service, report its pid, exit."""
    os.setsid()
    service = os.fork()
    if service:
        os.write(reply, f"{service}\n".encode())
        os._exit(0)
    os.close(reply)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    assert callable(main)
    code = 1
    try:
        code = int(main(argv))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def kill_if_forked_here(pid: int) -> None:
    """SIGKILL `pid` if it is still one of the forker's services (a pid can be reused)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return
    if b"tests.support.forked_service" in argv:
        os.kill(pid, signal.SIGKILL)


class ServiceForker:
    """Starts `agent-service` commands as forked processes; use as a context manager."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.forked_service"],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.started: list[int] = []

    def start(self, argv: list[str], log_path: Path) -> int:
        """Fork `agent-service <argv>`; its pid."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps({"argv": argv, "log": str(log_path)}) + "\n")
        self._proc.stdin.flush()
        pid = int(self._proc.stdout.readline())
        self.started.append(pid)
        return pid

    def __enter__(self) -> ServiceForker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for pid in self.started:
            kill_if_forked_here(pid)
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        self._proc.wait(10)


if __name__ == "__main__":
    _serve_requests()
