"""What of an upstream's SSE bytes may be relayed: each `data:` event checked as JSON, no I/O.

The upstream's body arrives in reads of any size. Each read is cut into lines
(LF, CRLF or CR, a line may span reads), and every complete `data:` line is
checked as UTF-8 JSON and framed as one event. All the events a read
completes come back as one piece of bytes, so the caller writes them with one
write: nothing waits for more, and nothing is split. The payload bytes are
relayed as they came; only the check decodes them, nothing re-encodes them.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

from llm_proxy.chunks import DONE_FRAME

# What json.loads runs for text, without its per-call checks of the argument's type and encoding.
_parse_json = json.JSONDecoder().decode


class End(enum.Enum):
    """Why the answer ends with the events of this read."""

    DONE = "done"  # `data: [DONE]`
    UPSTREAM_ERROR = "upstream error"  # a `data: {"error": ...}` event, relayed
    NOT_JSON = "not json"  # a `data:` payload that is not JSON, not relayed


@dataclass(frozen=True, slots=True)
class Relayed:
    """What one read of the upstream's body gives the caller."""

    frames: bytes = b""  # the checked events, framed, in order
    end: End | None = None  # set when nothing after these frames is to be relayed
    bad_payload: bytes = b""  # with End.NOT_JSON: the payload at fault
    keepalive: bool = False  # a comment line came: the upstream is silent, not gone


class SseRelay:
    """Turns reads of an upstream's SSE body into frames to relay."""

    def __init__(self) -> None:
        self._partial = b""

    def feed(self, data: bytes) -> Relayed:
        """The events completed by `data`, up to the one that ends the answer if it came."""
        if b"\r" in data:
            # A CRLF cut between two reads gives one empty line more, which changes nothing.
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        frames: list[bytes] = []
        keepalive = False
        for line in lines:
            if not line.startswith(b"data:"):
                keepalive = keepalive or line.startswith(b":")
                continue  # blank separators, comments, event names, ids
            payload = line[5:].strip()
            if payload == b"[DONE]":
                frames.append(DONE_FRAME)
                return Relayed(b"".join(frames), End.DONE)
            try:
                event = _parse_json(payload.decode())
            except (ValueError, RecursionError):  # UnicodeDecodeError included
                return Relayed(b"".join(frames), End.NOT_JSON, payload)
            frames.append(b"data: " + payload + b"\n\n")
            if isinstance(event, dict) and "error" in event:
                return Relayed(b"".join(frames), End.UPSTREAM_ERROR)
        return Relayed(b"".join(frames), keepalive=keepalive)
