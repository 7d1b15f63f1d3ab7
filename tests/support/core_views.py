"""Views of a session core for tests: its whole observable state, and commands in short form."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from orchestrator.commands import Command, EmitEvent, RejectEvent
from orchestrator.core import CoreConfig, SessionCore
from wire import Error, NumberedEvent, SessionState


@dataclass(frozen=True)
class Observable:
    """Everything the runtime can read from a core (its public API), frozen."""

    session_id: str
    config: CoreConfig
    state: SessionState
    last_seq: int
    turn_id: str | None
    current_request_id: str | None
    pending_call_ids: tuple[str, ...]
    calls_awaiting_approval: tuple[str, ...]
    approval_mode: str
    messages: tuple[str, ...]


def observe(core: SessionCore) -> Observable:
    """The core's observable state now; messages as JSON, so later changes cannot leak in."""
    return Observable(
        session_id=core.session_id,
        config=core.config,
        state=core.state,
        last_seq=core.last_seq,
        turn_id=core.turn_id,
        current_request_id=core.current_request_id,
        pending_call_ids=core.pending_call_ids,
        calls_awaiting_approval=core.calls_awaiting_approval,
        approval_mode=core.approval_mode,
        messages=tuple(json.dumps(message, sort_keys=True) for message in core.messages),
    )


def shape(command: Command) -> str:
    """`state`, `tool_call`, `error:<code>`... for emitted events; the class name otherwise."""
    if isinstance(command, EmitEvent):
        event = command.event
        return f"error:{event.code}" if isinstance(event, Error) else event.type
    return type(command).__name__


def shapes(commands: Iterable[Command]) -> list[str]:
    return [shape(command) for command in commands]


def emitted(commands: Iterable[Command]) -> list[NumberedEvent]:
    """The numbered events among the commands, in order."""
    return [command.event for command in commands if isinstance(command, EmitEvent)]


def only_rejection(commands: Sequence[Command]) -> RejectEvent:
    """The single `RejectEvent` a refused event returns."""
    assert len(commands) == 1 and isinstance(commands[0], RejectEvent), commands
    return commands[0]
