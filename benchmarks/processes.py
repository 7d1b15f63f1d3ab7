"""The processes under test: the bench upstream and the product's stacks, started and stopped here.

Each is a child process of the bench, in its own process group, logging to a
file; `stop()` sends SIGTERM, waits, and kills by pid only what is left of
what it started.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path

from benchmarks.errors import StartFailed
from benchmarks.procfs import children, command_line
from benchmarks.upstream import MODEL
from service_health import ServiceDidNotStart, answers_healthy, wait_until

HOST = "127.0.0.1"
STOP_TIMEOUT_S = 40.0
# Sessions the bench opens at once through one token; the orchestrator's default is 100.
SESSIONS_PER_TOKEN = 100_000


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class ChildProcess:
    """One process the bench started, and the file its output goes to."""

    def __init__(self, name: str, args: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, *args],
                env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        """Its process id."""
        return self.process.pid

    def wait_ready(self, ready: Callable[[], bool], timeout_s: float) -> None:
        """Poll `ready` until it holds; fail if the process dies or time runs out."""
        try:
            wait_until(ready, timeout_s, self.process, self.name)
        except ServiceDidNotStart as exc:
            raise StartFailed(f"{exc}: {self.tail()}") from None

    def stop(self, also: tuple[int, ...] = ()) -> int:
        """SIGTERM, wait; then SIGKILL it and the pids in `also` (its own children) if need be."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            for pid in (self.pid, *also):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.process.wait()
            return -signal.SIGKILL

    def tail(self) -> str:
        """The end of its output."""
        return self.log_path.read_text(errors="replace")[-2000:]


def _accepts_connections(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
        return True
    return False


class UpstreamProcess:
    """The bench upstream (`python -m benchmarks.upstream`) on a free port."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self._log_path = log_dir / "upstream.log"
        self.child: ChildProcess | None = None

    @property
    def base_url(self) -> str:
        """Where OpenAI clients point."""
        return f"http://{HOST}:{self.port}/v1"

    @property
    def pid(self) -> int:
        """Its process id."""
        assert self.child is not None, "start() first"
        return self.child.pid

    def start(self) -> None:
        """Launch it; `wait_ready` tells when it serves."""
        args = ["-m", "benchmarks.upstream", "--host", HOST, "--port", str(self.port)]
        self.child = ChildProcess("bench upstream", args, self._log_path, {})

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Until it accepts connections."""
        assert self.child is not None, "start() first"
        self.child.wait_ready(lambda: _accepts_connections(self.port), timeout_s)

    def stop(self) -> int:
        """Stop it; its exit code."""
        return 0 if self.child is None else self.child.stop()


class ProductStack:
    """`agent-service up` (three processes or `--in-process`), or `agent-service cluster` with
    one gateway and one orchestrator on a NATS server (`broker`), at the bench upstream."""

    def __init__(
        self, upstream_url: str, in_process: bool, log_dir: Path, broker: bool = False
    ) -> None:
        self.in_process = in_process
        self.label = "broker" if broker else "in-process" if in_process else "pipeline"
        self.token = secrets.token_hex(18)
        self.proxy_key = secrets.token_hex(18)
        self.gateway_port = free_port()
        self.proxy_port = free_port()
        self.nats_monitor_port = free_port() if broker else None
        self._log_path = log_dir / f"{self.label}.log"
        ports = [
            *("--gateway-port", str(self.gateway_port), "--proxy-port", str(self.proxy_port)),
            *("--orchestrator-port", str(free_port())),
        ]
        upstream = ["--llm-base-url", upstream_url, "--model", MODEL]
        if broker:
            self._args = [
                *("-m", "agent_service", "cluster", "--host", HOST, *upstream, *ports),
                *("--gateways", "1", "--orchestrators", "1", "--nats-port", str(free_port())),
                *("--nats-monitor-port", str(self.nats_monitor_port)),
            ]
        else:
            args = ["-m", "agent_service", "up", "--host", HOST, *upstream, *ports]
            self._args = [*args, "--in-process"] if in_process else args
        self.child: ChildProcess | None = None
        self.services: dict[str, int] = {}

    def broker_counters(self) -> dict[str, int]:
        """The NATS server's message and byte counters (`/varz`), on the broker stack."""
        assert self.nats_monitor_port is not None, "only the broker stack has a NATS server"
        url = f"http://{HOST}:{self.nats_monitor_port}/varz"
        with urllib.request.urlopen(url, timeout=5) as response:
            varz = json.loads(response.read())
        return {key: int(varz[key]) for key in ("in_msgs", "out_msgs", "in_bytes", "out_bytes")}

    @property
    def gateway_url(self) -> str:
        """Where IDEs connect."""
        return f"ws://{HOST}:{self.gateway_port}/v1/ws"

    @property
    def proxy_url(self) -> str:
        """The stack's llm-proxy, as an OpenAI base URL."""
        return f"http://{HOST}:{self.proxy_port}/v1"

    def start(self) -> None:
        """Launch `up`; `wait_ready` tells when it serves."""
        self.child = ChildProcess(
            f"agent-service up ({self.label})",
            self._args,
            self._log_path,
            {
                "AGENT_MAX_SESSIONS_PER_TOKEN": str(SESSIONS_PER_TOKEN),
                "AGENT_PROXY_KEY": self.proxy_key,
                "AGENT_TOKEN": self.token,
            },
        )

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until the gateway and what it depends on report healthy; then find each service."""
        assert self.child is not None, "start() first"
        health = f"http://{HOST}:{self.gateway_port}/healthz"
        self.child.wait_ready(partial(answers_healthy, health), timeout_s)
        self.services = self._find_services(self.child.pid)

    def stop(self) -> int:
        """Stop the stack as a user would (SIGTERM to `up`); its exit code."""
        if self.child is None:
            return 0
        code = self.child.stop(also=tuple(self.services.values()))
        self.child, self.services = None, {}
        return code

    def restart(self) -> None:
        """A fresh stack on the same ports: no sessions left from before."""
        self.stop()
        self.start()
        self.wait_ready()

    def _find_services(self, up_pid: int) -> dict[str, int]:
        """Service name -> pid: `up`'s children are the services; in-process, `up` serves too."""
        services = {_service_name(pid): pid for pid in children(up_pid)}
        if self.in_process:
            services["gateway+orchestrator"] = up_pid
        return services


def _service_name(pid: int) -> str:
    """The `agent-service` subcommand a process runs, or the program's name (nats-server)."""
    argv = command_line(pid)
    if "agent_service" not in argv:
        return Path(argv[0]).name
    return argv[argv.index("agent_service") + 1]
