"""One log line per turn start and end and per tool call, with durations, for operators.

It watches the events a session emits (never the text of deltas: it returns at
once for those, since they are the per-token path) and the moments tool calls are
answered. Times come from the runtime's monotonic clock; the core stays clock-free.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from wire import (
    AgentDelta,
    AgentMessage,
    Error,
    NumberedEvent,
    SessionState,
    StateChanged,
    ToolCall,
)

log = logging.getLogger("orchestrator.turns")

_AT_REST = (SessionState.IDLE, SessionState.ERROR, SessionState.DONE)


class TurnLog:
    """The turn and tool-call lines of one session."""

    def __init__(self, session_id: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._session_id = session_id
        self._clock = clock
        self._turn_started: float | None = None
        self._steps = 0
        self._tools: dict[str, tuple[str, float]] = {}
        self._tokens = (0, 0)
        self._last_error = ""

    def emitted(self, event: NumberedEvent) -> None:
        """Watch one event the session sent."""
        if type(event) is AgentDelta:
            return
        if isinstance(event, StateChanged):
            self._state(event)
        elif isinstance(event, ToolCall):
            self._tools[event.call_id] = (event.tool, self._clock())
        elif isinstance(event, AgentMessage):
            self._tokens = (event.usage.prompt_tokens, event.usage.completion_tokens)
        elif isinstance(event, Error):
            self._last_error = event.code

    def tool_answered(self, call_id: str, outcome: str) -> None:
        """A tool call ended: answered by the IDE (ok or failed), timed out, or cancelled."""
        started = self._tools.pop(call_id, None)
        if started is None:
            return
        tool, at = started
        log.info(
            "tool call ended",
            extra={
                "session_id": self._session_id,
                "call_id": call_id,
                "tool": tool,
                "outcome": outcome,
                "duration_ms": round((self._clock() - at) * 1000, 1),
            },
        )

    def _state(self, event: StateChanged) -> None:
        if event.state is SessionState.STREAMING:
            self._steps += 1
            if event.previous in _AT_REST:
                self._turn_started, self._steps, self._last_error = self._clock(), 1, ""
                log.info("turn started", extra={"session_id": self._session_id})
        elif event.state in _AT_REST and self._turn_started is not None:
            for call_id in list(self._tools):
                self.tool_answered(call_id, "cancelled")
            prompt, completion = self._tokens
            log.info(
                "turn ended",
                extra={
                    "session_id": self._session_id,
                    "state": event.state.value,
                    "error": self._last_error or None,
                    "model_calls": self._steps,
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "duration_ms": round((self._clock() - self._turn_started) * 1000, 1),
                },
            )
            self._turn_started, self._tokens = None, (0, 0)
