"""Attacks on the real services over real sockets: path variants of the routes, floods of
unauthenticated requests, bursts of connections, deeply nested JSON, and web pages calling the
llm-proxy that `agent-service up` starts."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from agent_service.stack import ServiceStack
from llm_proxy.chunks import ChunkBuilder
from tests.support.fake_upstream import DONE, Chunk, FakeUpstream
from tests.support.procs import ROOT, free_port, wait_healthy
from tests.support.stack import started_stack
from tests.support.wsclient import ProtocolClient

DEEP = "[" * 5_000 + "]" * 5_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceStack]:
    with started_stack(
        tmp_path_factory.mktemp("security"),
        extra_args={
            "gateway": ["--max-connections", "300"],
            "orchestrator": ["--max-sessions-per-token", "1000"],
        },
    ) as started:
        yield started


def http_status(port: int, request: bytes) -> tuple[int, bytes]:
    """Send one raw HTTP/1.1 request; the status code and the body's first bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def upgrade(path: str, *headers: str) -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def gateway_log(stack: ServiceStack) -> list[dict[str, object]]:
    assert stack._output is not None
    text = Path(stack._output.name).read_text(errors="replace")
    entries = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [entry for entry in entries if entry.get("service") == "gateway"]


VARIANTS = ["/v1/ws/", "//v1/ws", "/V1/WS", "/v1/ws%2F", "/v1//ws", "/v1/%77s", "/v1/ws/..", "/x"]


@pytest.mark.parametrize("path", ["/v1/ws", "/v1/ws?a=1", *VARIANTS])
def test_no_path_variant_upgrades_without_the_token(stack: ServiceStack, path: str) -> None:
    status, body = http_status(stack.config.gateway_port, upgrade(path))
    assert status == 401, (path, status)
    assert json.loads(body)["error"]["code"] == "unauthorized"
    evil = upgrade(
        path, f"Authorization: Bearer {stack.config.token}", "Origin: https://evil.example"
    )
    assert http_status(stack.config.gateway_port, evil)[0] == 403


@pytest.mark.parametrize("path", VARIANTS)
def test_a_path_variant_with_the_token_is_a_clean_404(stack: ServiceStack, path: str) -> None:
    authorized = upgrade(path, f"Authorization: Bearer {stack.config.token}")
    status, body = http_status(stack.config.gateway_port, authorized)
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"
    assert not [e for e in gateway_log(stack) if e["level"] == "error" or "exc" in e]


def test_a_flood_of_unauthenticated_upgrades_logs_a_bounded_number_of_lines(
    stack: ServiceStack,
) -> None:
    before = len(gateway_log(stack))
    for index in range(500):
        path = VARIANTS[index % len(VARIANTS)]
        assert http_status(stack.config.gateway_port, upgrade(path))[0] == 401
    time.sleep(0.3)
    written = len(gateway_log(stack)) - before
    assert written <= 10, f"{written} log lines for 500 refused requests"


async def test_deeply_nested_json_is_invalid_json_and_the_connection_stays(
    stack: ServiceStack,
) -> None:
    client = await ProtocolClient.connect(stack.config.gateway_url, stack.config.token)
    for frame in (DEEP, '{"type": "hello", "protocol": 1, "x": ' + DEEP + "}"):
        await client.connection.send(frame)
        refused = await client.receive()
        assert refused["type"] == "error" and refused["code"] in ("invalid_json", "invalid_frame")
    await client.connection.send(DEEP)
    assert (await client.receive())["code"] == "invalid_json"
    await client.hello()
    await client.connection.send(DEEP)
    assert (await client.receive())["code"] == "invalid_json"
    await client.close()
    assert not [e for e in stack_log_entries(stack) if e["level"] == "error" or "exc" in e]


def stack_log_entries(stack: ServiceStack) -> list[dict[str, object]]:
    assert stack._output is not None
    text = Path(stack._output.name).read_text(errors="replace")
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


async def test_the_connection_limit_holds_under_a_burst(stack: ServiceStack) -> None:
    config = stack.config
    headers = {"Authorization": f"Bearer {config.token}"}
    sockets = await asyncio.gather(
        *(connect(config.gateway_url, additional_headers=headers) for _ in range(450))
    )

    async def outcome(ws: ClientConnection) -> str:
        """`session` for a served connection; the refusal's code (or close code) otherwise."""
        try:
            await ws.send(json.dumps({"type": "hello", "protocol": 1}))
            frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
        except ConnectionClosed as closed:
            return "session_limit" if closed.rcvd and closed.rcvd.code == 1013 else "closed"
        return str(frame.get("code") or frame["type"])

    outcomes = await asyncio.gather(*(outcome(ws) for ws in sockets))
    await asyncio.gather(*(ws.close() for ws in sockets))
    assert outcomes.count("session") == 300, sorted(set(outcomes))
    assert outcomes.count("session_limit") == 150


async def test_a_chunk_of_the_wrong_shape_is_a_bad_response(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    upstream.reset(lambda request: [Chunk({"choices": "not a list"}), DONE])
    with started_stack(tmp_path, llm_base_url=upstream.base_url, model="fake-model") as started:
        client = await ProtocolClient.connect(started.config.gateway_url, started.config.token)
        await client.hello()
        frames = await client.run_turn("hi")
        await client.close()
    errors = [frame for frame in frames if frame["type"] == "error"]
    assert [error["code"] for error in errors] == ["llm_bad_response"]


# ---- the llm-proxy `agent-service up` starts ---------------------------------------------


class UpProcess:
    """`agent-service up` as a real process, and the proxy child it started."""

    def __init__(self, log_dir: Path) -> None:
        self.ports = {name: free_port() for name in ("gateway", "orchestrator", "proxy")}
        self.log_path = log_dir / "up.log"
        flags = [f"--{name}-port={port}" for name, port in self.ports.items()]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agent_service", "up", *flags],
                cwd=ROOT,
                env={**env, "PYTHONUNBUFFERED": "1", "AGENT_DEMO_DELAY_MS": "0"},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while "agent-service is up" not in self.output():
            assert self.proc.poll() is None and time.monotonic() < deadline, self.output()
            time.sleep(0.1)
        wait_healthy(f"http://127.0.0.1:{self.ports['gateway']}/healthz")
        found = re.search(r"^token: (\S+)$", self.output(), re.MULTILINE)
        assert found is not None
        self.token = found.group(1)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def child(self, command: str) -> int:
        """The pid of the child running `agent-service <command>`."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except (OSError, IndexError):
                continue
            if ppid == self.proc.pid and command.encode() in argv:
                return int(entry.name)
        raise AssertionError(f"no {command} child")

    def environ_of(self, command: str) -> dict[str, str]:
        raw = Path(f"/proc/{self.child(command)}/environ").read_bytes()
        pairs = (item.decode().partition("=") for item in raw.split(b"\0") if item)
        return {name: value for name, _, value in pairs}

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpProcess]:
    process = UpProcess(tmp_path_factory.mktemp("up"))
    try:
        yield process
    finally:
        assert process.stop() == 0, process.output()


CHAT = json.dumps({"model": "demo", "messages": [{"role": "user", "content": "hi"}]}).encode()


def post(port: int, body: bytes, *headers: str, host: str = "127.0.0.1") -> tuple[int, bytes]:
    lines = [
        "POST /v1/chat/completions HTTP/1.1",
        f"Host: {host}:{port}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *headers,
    ]
    return http_status(port, ("\r\n".join(lines) + "\r\n\r\n").encode() + body)


def error_code(body: bytes) -> str:
    return str(json.loads(body)["error"]["code"])


def test_the_proxy_up_starts_requires_its_generated_key(up: UpProcess) -> None:
    key = up.environ_of("llm-proxy")["AGENT_PROXY_KEY"]
    assert up.environ_of("orchestrator")["AGENT_LLM_API_KEY"] == key
    port = up.ports["proxy"]
    json_type = "Content-Type: application/json"
    status, body = post(port, CHAT, json_type)
    assert (status, error_code(body)) == (401, "invalid_api_key")
    assert post(port, CHAT, json_type, "Authorization: Bearer wrong-key")[0] == 401
    assert post(port, CHAT, json_type, f"Authorization: Bearer {key}")[0] == 200
    for command in ("llm-proxy", "orchestrator", "gateway"):
        assert key.encode() not in Path(f"/proc/{up.child(command)}/cmdline").read_bytes()
    assert key not in up.output()


@pytest.mark.parametrize(
    ("headers", "host", "status", "code"),
    [
        (["Content-Type: text/plain"], "127.0.0.1", 415, "unsupported_content_type"),
        (
            ["Content-Type: application/x-www-form-urlencoded"],
            "localhost",
            415,
            "unsupported_content_type",
        ),
        ([], "127.0.0.1", 415, "unsupported_content_type"),
        (["Content-Type: application/json"], "rebound.evil.example", 403, "host_not_allowed"),
        (
            ["Content-Type: application/json", "Origin: https://evil.example"],
            "127.0.0.1",
            403,
            "origin_not_allowed",
        ),
        (
            ["Content-Type: application/json", "Origin: null"],
            "localhost",
            403,
            "origin_not_allowed",
        ),
    ],
)
def test_the_proxy_up_starts_refuses_what_a_web_page_can_send(
    up: UpProcess, headers: list[str], host: str, status: int, code: str
) -> None:
    key = up.environ_of("llm-proxy")["AGENT_PROXY_KEY"]
    answered = post(up.ports["proxy"], CHAT, *headers, f"Authorization: Bearer {key}", host=host)
    assert (answered[0], error_code(answered[1])) == (status, code)


def test_deeply_nested_json_to_the_proxy_is_invalid_json(up: UpProcess) -> None:
    key = up.environ_of("llm-proxy")["AGENT_PROXY_KEY"]
    status, body = post(
        up.ports["proxy"],
        DEEP.encode(),
        "Content-Type: application/json",
        f"Authorization: Bearer {key}",
    )
    assert (status, error_code(body)) == (400, "invalid_json")


async def test_a_turn_through_up_reaches_the_keyed_proxy(up: UpProcess) -> None:
    client = await ProtocolClient.connect(f"ws://127.0.0.1:{up.ports['gateway']}/v1/ws", up.token)
    await client.hello()
    await client.send({"type": "user_message", "content": "hello"})
    first = await client.receive_until(
        lambda frame: frame["type"] in ("agent_delta", "tool_call", "error")
    )
    await client.close()
    assert first["type"] != "error", first


async def test_a_client_that_stops_reading_is_closed_with_4008_and_can_resume(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    chunks = ChunkBuilder("chatcmpl-slow", 0, "fake-model")
    piece = "x" * 512 * 1024
    upstream.reset(
        lambda request: [
            Chunk(chunks.role()),
            *(Chunk(chunks.text(piece)) for _ in range(30)),
            Chunk(chunks.finish("stop")),
            DONE,
        ]
    )
    with started_stack(
        tmp_path,
        llm_base_url=upstream.base_url,
        model="fake-model",
        extra_args={
            "gateway": ["--client-send-timeout", "1.5"],
            # A long answer, over the default output budget of a turn: lift it.
            "orchestrator": ["--max-resume-chars", str(64 * 1024 * 1024), "--max-turn-output", "0"],
        },
    ) as started:
        config = started.config
        headers = {"Authorization": f"Bearer {config.token}"}
        # max_queue=1: the client's socket stops being read once one frame waits in it
        ws = await connect(
            config.gateway_url, additional_headers=headers, max_queue=1, max_size=None
        )
        await ws.send(json.dumps({"type": "hello", "protocol": 1}))
        session = json.loads(await ws.recv())
        await ws.send(json.dumps({"type": "user_message", "content": "a long answer"}))
        await asyncio.sleep(5)
        last_seq = 0
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                last_seq = frame.get("seq", last_seq)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008
        client = await ProtocolClient.connect(config.gateway_url, config.token)
        resumed = await client.hello(session["session_id"], last_seq)
        assert resumed["resumed"] is True
        await client.receive_until(lambda frame: frame.get("state") == "done", timeout=60)
        await client.close()


# on a broker a gateway opens no descriptor per session, so sessions never run out of them
@pytest.mark.single_machine
async def test_out_of_descriptors_the_gateway_says_retry_later_and_logs_little(
    tmp_path: Path,
) -> None:
    with started_stack(tmp_path) as started:
        config = started.config
        gateway = next(proc for name, proc in started._children if name == "gateway")
        open_now = len(os.listdir(f"/proc/{gateway.pid}/fd"))
        _, hard = resource.prlimit(gateway.pid, resource.RLIMIT_NOFILE)
        resource.prlimit(gateway.pid, resource.RLIMIT_NOFILE, (open_now + 40, hard))
        before = len(gateway_log(started))
        headers = {"Authorization": f"Bearer {config.token}"}
        outcomes: list[str] = []

        async def attempt() -> None:
            try:
                ws = await connect(config.gateway_url, additional_headers=headers, open_timeout=20)
            except (OSError, TimeoutError, InvalidHandshake):
                outcomes.append("not accepted")
                return
            try:
                await ws.send(json.dumps({"type": "hello", "protocol": 1}))
                frame = json.loads(await asyncio.wait_for(ws.recv(), 20))
                outcomes.append(str(frame.get("code") or frame["type"]))
                await asyncio.sleep(1.0)
            except ConnectionClosed as closed:
                outcomes.append(f"closed {closed.rcvd.code if closed.rcvd else None}")
            finally:
                await ws.close()

        await asyncio.gather(*(attempt() for _ in range(150)))
        await asyncio.sleep(2.0)
        lines = gateway_log(started)[before:]
        written = len(lines)
        resource.prlimit(gateway.pid, resource.RLIMIT_NOFILE, (hard, hard))
        seen = collections.Counter(outcomes)
        assert "orchestrator_unavailable" not in seen, seen
        assert seen["session_limit"] and seen["session"], seen
        top = collections.Counter(entry["msg"][:80] for entry in lines).most_common(3)
        assert written <= 20, f"{written} log lines: {top}"
        client = await ProtocolClient.connect(config.gateway_url, config.token)
        await client.hello()
        await client.close()


@pytest.mark.parametrize("path", ["/v1/link", "/v1/link?a=1", "/v1/link/", "//v1/link", "/V1/LINK"])
def test_the_orchestrator_link_needs_the_internal_token_on_every_path(
    stack: ServiceStack, path: str
) -> None:
    port = stack.config.orchestrator_port
    assert http_status(port, upgrade(path))[0] in (401, 404)
    token = f"Authorization: Bearer {stack.config.internal_token}"
    browser = upgrade(path, token, "Origin: https://evil.example")
    assert http_status(port, browser)[0] == 403
    expected = 101 if path.startswith("/v1/link") and not path.startswith("/v1/link/") else 404
    assert http_status(port, upgrade(path, token))[0] == expected
