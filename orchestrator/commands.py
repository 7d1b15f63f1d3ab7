"""Commands out of the session core: what the runtime must do, as frozen data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wire import NumberedEvent


@dataclass(frozen=True, slots=True)
class EmitEvent:
    """Append this numbered event to the session's history and send it to the IDE."""

    event: NumberedEvent


@dataclass(frozen=True, slots=True)
class RejectEvent:
    """The event was not allowed here; nothing changed.

    The runtime replies with a protocol `error` to the client that sent the event,
    or logs it when the event came from inside (a stale LLM chunk or timer).
    """

    code: str
    message: str
    event_type: str
    state: str
    message_id: str | None = None
    call_id: str | None = None


@dataclass(frozen=True, slots=True)
class StartLlmRequest:
    """Stream a chat completion of these messages and feed its events back tagged `request_id`."""

    request_id: str
    messages: tuple[dict[str, Any], ...]
    tools: tuple[dict[str, Any], ...]
    max_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class AbortLlmRequest:
    """Close the LLM request's connection now; its later events are stale."""

    request_id: str


@dataclass(frozen=True, slots=True)
class StartToolTimer:
    """Feed `ToolTimedOut(call_id)` after `seconds` unless cleared first."""

    call_id: str
    seconds: float


@dataclass(frozen=True, slots=True)
class ClearToolTimer:
    """Forget the tool call's timer."""

    call_id: str


@dataclass(frozen=True, slots=True)
class StartTurnTimer:
    """Feed `TurnDeadlineReached(turn_id)` after `seconds`; a timer of an ended turn is moot."""

    turn_id: str
    seconds: float


Command = (
    EmitEvent
    | RejectEvent
    | StartLlmRequest
    | AbortLlmRequest
    | StartToolTimer
    | ClearToolTimer
    | StartTurnTimer
)
