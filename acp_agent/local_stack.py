"""The service started by the bridge itself: `agent-service up` as a child, on free loopback ports.

For an editor that launches `agent-service acp` with no `--url`: one command line gives it the
whole service. The child's output goes to this process's stderr (stdout is the JSON-RPC
channel), its token comes through the environment (so it is never printed), and on Linux it
gets SIGTERM when this process dies, however it dies, so no stack outlives its editor.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence

from acp_agent.session import Gateway
from service_health import ServiceDidNotStart, wait_healthy
from wire import AgentServiceError

HOST = "127.0.0.1"
_PR_SET_PDEATHSIG = 1


class LocalStackError(AgentServiceError):
    """The local service did not start."""

    code = "stack_failed"


class LocalStack:
    """`agent-service up` with `up_args`, started once, in the background, on first need.

    `token` is the gateway's (a new one when None): a fixed token and `--transcripts` let a
    later run load the sessions of an earlier one.
    """

    def __init__(
        self,
        up_args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        token: str | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.up_args = list(up_args)
        self.token = token or secrets.token_hex(24)
        self.env = dict(env or {})
        self.start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._ready: asyncio.Task[Gateway] | None = None

    def start(self) -> None:
        """Start the child now; `gateway()` waits until it answers."""
        if self._ready is None:
            self._ready = asyncio.get_running_loop().create_task(self._start())

    async def gateway(self) -> Gateway:
        """The local gateway, once healthy; raises LocalStackError if it never came up."""
        self.start()
        assert self._ready is not None
        return await asyncio.shield(self._ready)

    async def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM the stack (it stops its services cleanly) and wait; its exit code."""
        if self._ready is not None and not self._ready.done():
            self._ready.cancel()
            with contextlib.suppress(BaseException):
                await self._ready
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(process.wait, timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)
        return process.returncode

    async def _start(self) -> Gateway:
        ports = [_free_port() for _ in range(3)]
        args = [
            *self.up_args,
            "--host",
            HOST,
            "--gateway-port",
            str(ports[0]),
            "--orchestrator-port",
            str(ports[1]),
            "--proxy-port",
            str(ports[2]),
        ]
        self._process = subprocess.Popen(
            [sys.executable, "-m", "agent_service", "up", *args],
            env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1", "AGENT_TOKEN": self.token},
            stdin=subprocess.DEVNULL,
            stdout=sys.stderr.fileno(),
            stderr=sys.stderr.fileno(),
            preexec_fn=_die_with_parent,
        )
        health = f"http://{HOST}:{ports[0]}/healthz"
        await asyncio.to_thread(_wait_healthy, health, self._process, self.start_timeout)
        return Gateway(url=f"ws://{HOST}:{ports[0]}/v1/ws", token=self.token)


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux for SIGTERM when the parent dies (elsewhere: no-op)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        wait_healthy(url, timeout, process, "agent-service up")
    except ServiceDidNotStart as exc:
        raise LocalStackError(str(exc)) from None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])
