"""A scripted stand-in for the gateway: a real WebSocket server on loopback speaking protocol v1.

Each connection runs the test's script with a `Peer`, which sends frames and checks the
client's. Numbered events get `session_id` and the next `seq` automatically, continuing
across connections as the real gateway does, so resume can be scripted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

TOKEN = "test-token"
SESSION_ID = "s_1"
TOOLS = ["read_file", "write_file", "git.diff", "apply_patch"]
Frame = dict[str, Any]
Script = Callable[["Peer"], Awaitable[None]]


class Peer:
    """The gateway's side of one connection, as a script sees it."""

    def __init__(self, gateway: FakeGateway, connection: ServerConnection) -> None:
        self.gateway = gateway
        self.connection = connection

    async def expect(self, frame_type: str) -> Frame:
        """The client's next frame, which must be of `frame_type`."""
        async with asyncio.timeout(10):
            frame: Frame = json.loads(await self.connection.recv())
        self.gateway.received.append(frame)
        assert frame["type"] == frame_type, f"expected {frame_type}, got {frame}"
        return frame

    async def reply(self, frame_type: str, **fields: Any) -> None:
        """A frame without seq (`session`, protocol `error`)."""
        await self.connection.send(json.dumps({"type": frame_type, **fields}))

    async def event(self, frame_type: str, **fields: Any) -> int:
        """A numbered event with the next seq; returns that seq."""
        self.gateway.seq += 1
        await self.send_numbered(frame_type, self.gateway.seq, **fields)
        return self.gateway.seq

    async def send_numbered(self, frame_type: str, seq: int, **fields: Any) -> None:
        """A numbered event with the given seq (to replay one)."""
        frame = {"type": frame_type, "session_id": SESSION_ID, "seq": seq, **fields}
        self.gateway.sent[seq] = frame
        await self.connection.send(json.dumps(frame))

    async def replay(self, seq: int) -> None:
        """Send an event already sent, verbatim (as a resume does)."""
        await self.connection.send(json.dumps(self.gateway.sent[seq]))

    async def accept_hello(self, *, resumed: bool = False, **session: Any) -> Frame:
        """Read `hello` and answer with a `session` reply (`session`: more of its fields)."""
        hello = await self.expect("hello")
        await self.reply(
            "session",
            session_id=SESSION_ID,
            state="idle",
            last_seq=self.gateway.seq,
            resumed=resumed,
            protocol=1,
            tools=TOOLS,
            **session,
        )
        return hello

    async def state(self, state: str, previous: str) -> int:
        return await self.event("state", state=state, previous=previous)

    async def finish_turn(self, text_pieces: list[str], previous: str = "streaming") -> None:
        """Stream the answer, then `agent_message` and `state` → done."""
        for piece in text_pieces:
            await self.event("agent_delta", turn_id="t1", text=piece)
        await self.event(
            "agent_message",
            turn_id="t1",
            content="".join(text_pieces),
            finish_reason="stop",
            usage={"prompt_tokens": 10, "completion_tokens": len(text_pieces)},
        )
        await self.state("done", previous)

    def drop(self) -> None:
        """Cut the TCP connection without a close frame, as a network failure does."""
        self.connection.transport.abort()

    async def wait_closed(self) -> None:
        """Wait for the client to hang up."""
        async with asyncio.timeout(10):
            await self.connection.wait_closed()


class FakeGateway:
    """`async with FakeGateway(script) as gateway:` then connect to `gateway.url`."""

    def __init__(self, script: Script, *, token: str = TOKEN) -> None:
        self.script = script
        self.token = token
        self.seq = 0
        self.sent: dict[int, Frame] = {}
        self.received: list[Frame] = []
        self.connections = 0
        self.failures: list[BaseException] = []
        self._server: Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}/v1/ws"

    async def __aenter__(self) -> FakeGateway:
        self._server = await serve(self._handle, "127.0.0.1", 0, process_request=self._check_token)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        if self.failures and exc_info[0] is None:
            raise self.failures[0]

    def received_of(self, frame_type: str) -> list[Frame]:
        """Every client frame of one type, across connections."""
        return [frame for frame in self.received if frame["type"] == frame_type]

    def _check_token(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Authorization") == f"Bearer {self.token}":
            return None
        return connection.respond(HTTPStatus.UNAUTHORIZED, "missing or wrong token\n")

    async def _handle(self, connection: ServerConnection) -> None:
        self.connections += 1
        try:
            await self.script(Peer(self, connection))
        except BaseException as exc:
            self.failures.append(exc)
            raise
