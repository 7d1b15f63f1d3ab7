"""A protocol v1 client of the gateway, as an IDE would be: hello once, then timed turns."""

from __future__ import annotations

import itertools
import json
import time

from websockets.asyncio.client import ClientConnection, connect

from benchmarks.directive import Directive
from benchmarks.errors import TurnFailed
from benchmarks.turn import Turn

AT_REST = frozenset({"done", "idle", "error"})
TOOL_OUTPUT = {"content": "bench"}
CLIENT = {"name": "agent-service-bench", "version": "1"}


class ProtocolSession:
    """One IDE connection and its session; every received frame is decoded as an IDE would."""

    def __init__(self, connection: ClientConnection, session_id: str) -> None:
        self._connection = connection
        self.session_id = session_id
        self._message_ids = itertools.count(1)

    @classmethod
    async def open(cls, url: str, token: str) -> ProtocolSession:
        """Connect with the bearer token and open a new session."""
        connection = await connect(
            url,
            additional_headers={"Authorization": f"Bearer {token}"},
            compression=None,
            max_size=None,
            open_timeout=60,
            ping_interval=None,
        )
        await connection.send(json.dumps({"type": "hello", "protocol": 1, "client": CLIENT}))
        reply = json.loads(await connection.recv())
        if reply.get("type") != "session":
            await connection.close()
            raise TurnFailed(f"hello refused: {reply.get('code')}: {reply.get('message')}")
        return cls(connection, reply["session_id"])

    async def turn(self, directive: Directive) -> Turn:
        """Send a user message; answer a tool call at once; return when the session is at rest."""
        message = {
            "type": "user_message",
            "id": f"m{next(self._message_ids)}",
            "content": directive.message(),
        }
        text = json.dumps(message)
        turn = Turn(time.monotonic_ns())
        await self._connection.send(text)
        started = False
        while True:
            raw = await self._connection.recv()
            received_ns = time.monotonic_ns()
            frame = json.loads(raw)
            kind = frame["type"]
            if kind == "agent_delta":
                turn.add(frame["text"], received_ns)
            elif kind == "tool_call":
                turn.tool_call_ns = received_ns
                await self._answer(frame["call_id"])
            elif kind == "error":
                raise TurnFailed(f"{frame['source']} error {frame['code']}: {frame['message']}")
            elif kind == "state":
                started = started or frame["state"] == "streaming"
                if started and frame["state"] in AT_REST:
                    return turn

    async def close(self) -> None:
        """Hang up; the session lives on for the orchestrator's grace period."""
        await self._connection.close()

    async def _answer(self, call_id: str) -> None:
        result = {"type": "tool_result", "call_id": call_id, "ok": True, "output": TOOL_OUTPUT}
        await self._connection.send(json.dumps(result))
