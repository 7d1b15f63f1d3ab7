"""The gateway's check of the services behind it, against real HTTP and HTTPS servers."""

from __future__ import annotations

import contextlib
import http.server
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.health import answers_healthy
from tests.support.procs import ROOT, free_port


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serving(status: int, tls: ssl.SSLContext | None = None) -> Iterator[int]:
    handler = type("Handler", (_Health,), {"status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
async def test_the_status_of_healthz_decides(status: int, healthy: bool) -> None:
    with serving(status) as port:
        assert await answers_healthy(f"http://127.0.0.1:{port}") is healthy


async def test_nothing_listening_is_unhealthy() -> None:
    assert await answers_healthy(f"http://127.0.0.1:{free_port()}", timeout_s=1) is False


def test_an_https_service_is_checked_over_tls(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    command = [
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
    ]
    command += ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        command,
        check=True,
        capture_output=True,
    )
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    check = (
        "import asyncio, sys; from gateway.health import answers_healthy;"
        "print(asyncio.run(answers_healthy(sys.argv[1])))"
    )
    with serving(200, tls) as port:
        done = subprocess.run(
            [sys.executable, "-c", check, f"https://127.0.0.1:{port}"],
            cwd=ROOT,
            env={**os.environ, "SSL_CERT_FILE": str(cert)},
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.stdout.strip() == "True", done.stderr
