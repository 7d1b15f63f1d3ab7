"""The gateway's Sanic adapter holds only while Sanic's internals look as it expects.

`gateway/sanic_websocket.py` subclasses Sanic's internal WebSocket protocol and
swaps each connection's frame assembler. These tests read the installed Sanic:
an upgrade that renames, re-signs or stops using one of those internals fails
here, by name, before it breaks a connection. The end-to-end behaviour (1007 on
a text frame that is not UTF-8, a client offering no subprotocol) is tested
through the real gateway in `test_e2e_fuzz.py` and `test_e2e_pipeline.py`.
"""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

from sanic.server.protocols.websocket_protocol import WebSocketProtocol
from sanic.server.websockets.frame import WebsocketFrameAssembler
from sanic.server.websockets.impl import WebsocketImplProtocol
from websockets.frames import Frame, Opcode

import gateway
from gateway.sanic_websocket import (
    CLOSE_INVALID_DATA,
    SubprotocolOptionalProtocol,
    Utf8EnforcingAssembler,
)


def _parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def test_sanic_handshake_still_takes_the_request_and_the_subprotocols() -> None:
    assert issubclass(SubprotocolOptionalProtocol, WebSocketProtocol)
    assert _parameters(WebSocketProtocol.websocket_handshake) == [
        "self",
        "request",
        "subprotocols",
    ]
    assert inspect.iscoroutinefunction(WebSocketProtocol.websocket_handshake)
    assert _parameters(WebSocketProtocol.connection_made) == ["self", "transport"]


def test_sanic_connections_still_read_frames_through_a_swappable_assembler() -> None:
    source = inspect.getsource(WebsocketImplProtocol)
    assert "self.assembler = WebsocketFrameAssembler(self)" in source
    assert "await self.assembler.put(" in source
    assert _parameters(WebsocketFrameAssembler.__init__) == ["self", "protocol"]
    assert _parameters(WebsocketFrameAssembler.put) == ["self", "frame"]
    assert _parameters(WebsocketImplProtocol.fail_connection) == ["self", "code", "reason"]


class _Connection:
    """What the assembler calls back on its connection: pause and fail."""

    def __init__(self) -> None:
        self.failed: list[tuple[int, str]] = []

    def pause_frames(self) -> bool:
        return False

    def fail_connection(self, code: int, reason: str) -> bool:
        self.failed.append((code, reason))
        return True


async def test_assembler_fails_the_connection_with_1007_when_a_text_frame_is_not_utf8() -> None:
    connection = _Connection()
    assembler = Utf8EnforcingAssembler(connection)
    await assembler.put(Frame(Opcode.TEXT, b"\xff\xfe"))
    assert connection.failed == [(CLOSE_INVALID_DATA, "frames must be UTF-8")]


async def test_assembler_passes_a_utf8_text_frame_on_unchanged() -> None:
    connection = _Connection()
    assembler = Utf8EnforcingAssembler(connection)
    _, message = await asyncio.gather(
        assembler.put(Frame(Opcode.TEXT, "héllo".encode())), assembler.get()
    )
    assert message == "héllo"
    assert connection.failed == []


def test_only_the_adapter_imports_sanic_internals() -> None:
    root = Path(gateway.__file__).resolve().parent.parent
    importers = sorted(
        str(path.relative_to(root))
        for package in ("gateway", "orchestrator", "llm_proxy", "agent_service", "acp_agent")
        for path in (root / package).rglob("*.py")
        if "sanic.server" in path.read_text(encoding="utf-8")
    )
    assert importers == ["gateway/sanic_websocket.py"]
