"""Real service processes for tests: start on free loopback ports, wait for /healthz, stop cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from service_health import wait_healthy

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_run(count: int, avoid: Collection[int] = ()) -> int:
    """A port starting `count` consecutive ports nobody listens on, none in `avoid` (a command
    that puts its i-th process on base + i)."""
    while True:
        base = free_port()
        run = range(base, base + count)
        if any(port in avoid for port in run):
            continue
        sockets = [socket.socket() for _ in run]
        try:
            for sock, port in zip(sockets, run, strict=True):
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return base


def distinct_ports(count: int, avoid: Collection[int] = ()) -> list[int]:
    """`count` free loopback ports, all different and none in `avoid` (held together while
    they are chosen)."""
    sockets: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            sock = socket.socket()
            sockets.append(sock)
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
            if port not in avoid:
                ports.append(port)
        return ports
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class ServiceProcess:
    """One `agent-service <command>` child process and where its output goes."""

    args: list[str]
    health_url: str | None
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    health_timeout: float = 60.0
    """Long enough for `up` to start its three services one after the other on a loaded
    machine (each imports for seconds there); a bound on hanging, not a speed target."""

    def start(self) -> ServiceProcess:
        """Start it and wait until it is healthy."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent_service", *self.args],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        if self.health_url:
            try:
                wait_healthy(self.health_url, self.health_timeout, self.proc)
            except Exception:
                self.stop()
                raise RuntimeError(f"{self.args[0]} did not start:\n{self.output()}") from None
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send `sig` and wait; return the exit code (kills after `timeout`)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)

    def kill(self) -> None:
        """SIGKILL: no chance to clean up."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def output(self) -> str:
        """Everything the process printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextlib.contextmanager
def running(service: ServiceProcess) -> Iterator[ServiceProcess]:
    """Run a service for the block; its clean exit on SIGTERM is part of the test."""
    service.start()
    try:
        yield service
    finally:
        code = service.stop()
        assert code == 0, f"{service.args[0]} exited {code} on SIGTERM:\n{service.output()}"


def stop_listener(port: int, timeout: float = 20.0) -> None:
    """SIGTERM the process listening on `port` (a service some stack started) and wait until
    the port is free, so that a test can keep a service down for a while."""
    listeners = subprocess.run(["fuser", "-k", "-TERM", f"{port}/tcp"], capture_output=True)
    assert listeners.stdout.split(), f"no process listens on port {port}"
    deadline = time.monotonic() + timeout
    while subprocess.run(["fuser", f"{port}/tcp"], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, f"the process on port {port} did not stop"
        time.sleep(0.1)
