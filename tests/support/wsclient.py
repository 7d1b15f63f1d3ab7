"""A minimal protocol v1 client written from the protocol page alone, for end-to-end tests.

It is deliberately independent of `ide_client`: it checks the contract, not our client.
Every frame it receives is checked against the published docs/protocol.schema.json.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.support.protocol_schema import assert_server_frame

Frame = dict[str, Any]
ToolAnswer = Callable[[Frame], Awaitable[Frame | None]]
AT_REST = {"done", "error", "idle"}


class ProtocolClient:
    """One WebSocket connection speaking protocol v1, recording every frame it receives."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.received: list[Frame] = []

    @classmethod
    async def connect(cls, url: str, token: str | None) -> ProtocolClient:
        """Open the socket with a bearer token (or none)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return cls(await connect(url, additional_headers=headers, max_size=None))

    async def send(self, frame: Frame) -> None:
        """Send one frame as JSON text."""
        await self.connection.send(json.dumps(frame))

    async def receive(self, timeout: float = 20.0) -> Frame:
        """The next frame, once it is checked against the published schema."""
        text = await asyncio.wait_for(self.connection.recv(), timeout)
        frame: Frame = json.loads(text)
        assert_server_frame(frame)
        self.received.append(frame)
        return frame

    async def receive_until(
        self, predicate: Callable[[Frame], bool], timeout: float = 20.0
    ) -> Frame:
        """Receive until a frame matches `predicate`; return it."""
        while True:
            frame = await self.receive(timeout)
            if predicate(frame):
                return frame

    async def hello(
        self, session_id: str | None = None, last_seq: int = 0, capabilities: Frame | None = None
    ) -> Frame:
        """Open or resume a session (declaring `capabilities`, if given); return the reply."""
        frame: Frame = {"type": "hello", "protocol": 1}
        if session_id is not None:
            frame.update(session_id=session_id, last_seq=last_seq)
        if capabilities is not None:
            frame["capabilities"] = capabilities
        await self.send(frame)
        reply = await self.receive()
        assert reply["type"] == "session", reply
        return reply

    async def run_turn(
        self, content: str, answer: ToolAnswer | None = None, message_id: str = "m1"
    ) -> list[Frame]:
        """Send a user message; answer tool calls with `answer`; return frames until at rest."""
        start = len(self.received)
        await self.send({"type": "user_message", "id": message_id, "content": content})
        started = False
        while True:
            frame = await self.receive()
            if frame["type"] == "tool_call" and answer is not None:
                result = await answer(frame)
                if result is not None:
                    await self.send(result)
            if frame["type"] == "state":
                started = started or frame["state"] == "streaming"
                if started and frame["state"] in AT_REST:
                    return self.received[start:]

    async def text_of_turn(self, content: str, timeout: float = 120) -> int:
        """Send a user message; the characters of text streamed until `done`, keeping no
        frame (for answers too large to hold twice)."""
        await self.send({"type": "user_message", "content": content})
        received = 0
        while True:
            frame = await self.receive(timeout=timeout)
            if frame["type"] == "agent_delta":
                received += len(frame["text"])
            if state_is("done")(frame):
                return received
            self.received.clear()

    async def close(self) -> None:
        """Close the socket."""
        await self.connection.close()


def state_is(state: str) -> Callable[[Frame], bool]:
    """A predicate for the `state` event that enters `state`."""
    return lambda frame: frame["type"] == "state" and frame["state"] == state


def numbered(frames: list[Frame]) -> list[Frame]:
    """The frames that carry a seq."""
    return [frame for frame in frames if "seq" in frame]
