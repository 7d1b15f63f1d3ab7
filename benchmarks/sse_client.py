"""A lean client of an OpenAI-compatible endpoint: one keep-alive HTTP/1.1 connection, SSE by hand.

It reads a stream the way the floor should be read: straight off the socket,
the chunked framing and the SSE lines cut in place, one `json.loads` per event
and nothing more, so that what the bench measures past it is the path's own.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from benchmarks.directive import Directive
from benchmarks.errors import TurnFailed
from benchmarks.turn import Turn
from benchmarks.upstream import MODEL

TOOL_OUTPUT = json.dumps({"content": "bench"})


@dataclass(slots=True)
class _ToolCallParts:
    """A streamed tool call, put together from its deltas."""

    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)

    def add(self, delta: dict[str, Any]) -> None:
        self.id = delta.get("id") or self.id
        function = delta.get("function") or {}
        self.name += function.get("name") or ""
        self.arguments.append(function.get("arguments") or "")

    def messages(self) -> list[dict[str, Any]]:
        """The assistant's call and the tool's answer, as the next request carries them."""
        function = {"name": self.name, "arguments": "".join(self.arguments)}
        call = {"id": self.id, "type": "function", "function": function}
        return [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": self.id, "content": TOOL_OUTPUT},
        ]


class SseSession:
    """Chat completions streamed over one connection, one request after the other."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, path: str
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._host = host.encode()
        self._path = path.encode()
        self._auth = b""

    @classmethod
    async def open(cls, base_url: str, key: str | None = None) -> SseSession:
        """Connect to the endpoint at `base_url` (e.g. http://127.0.0.1:9000/v1), presenting
        `key` as a bearer token when given."""
        url = urlsplit(base_url)
        host, port = url.hostname or "127.0.0.1", url.port or 80
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 22)
        session = cls(reader, writer, f"{host}:{port}", f"{url.path.rstrip('/')}/chat/completions")
        if key:
            session._auth = b"authorization: Bearer %s\r\n" % key.encode()
        return session

    async def turn(self, directive: Directive) -> Turn:
        """Stream the answer; after a tool call, send its result at once and stream the rest."""
        messages: list[dict[str, Any]] = [{"role": "user", "content": directive.message()}]
        turn = Turn(time.monotonic_ns())
        call = await self._stream(messages, turn)
        if call is not None:
            await self._stream(messages + call.messages(), turn)
        return turn

    async def close(self) -> None:
        """Hang up."""
        self._writer.close()

    async def _stream(self, messages: list[dict[str, Any]], turn: Turn) -> _ToolCallParts | None:
        """One streamed request; return the tool call it answered with, if it did."""
        body = json.dumps(
            {
                "model": MODEL,
                "messages": messages,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        ).encode()
        self._writer.write(
            b"POST %s HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\n%s"
            b"content-length: %d\r\n\r\n%s" % (self._path, self._host, self._auth, len(body), body)
        )
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = head.split(b" ", 2)[1]
        if status != b"200" or b"chunked" not in head.lower():
            raise TurnFailed(f"the endpoint answered {status.decode()}: {head[:300]!r}")
        call = _ToolCallParts()
        pending = b""
        done = False
        while size := int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16):
            data = pending + (await self._reader.readexactly(size + 2))[:-2]
            received_ns = time.monotonic_ns()
            end = data.rfind(b"\n")
            lines, pending = data[:end].split(b"\n"), data[end + 1 :]
            for line in lines:
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    done = True
                    if call.id:
                        turn.tool_call_ns = received_ns
                    continue
                chunk = json.loads(payload)
                if "error" in chunk:
                    raise TurnFailed(f"the stream failed: {chunk['error']}")
                for choice in chunk["choices"]:
                    delta = choice["delta"]
                    if delta.get("content"):
                        turn.add(delta["content"], received_ns)
                    for part in delta.get("tool_calls") or ():
                        call.add(part)
        await self._reader.readuntil(b"\r\n")
        if not done:
            raise TurnFailed("the stream ended without [DONE]")
        return call if call.id else None
