"""Each turn's latency waterfall, from the times rows were recorded.

A turn starts with an accepted user message. Each model request is a step:
the request (sent to first model output, to end of stream) and the tool calls
it led to (sent to the IDE, to its result). Times are the recorder's clock:
an input's time is when it reached the core, its outputs' time is right after.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from orchestrator import (
    AbortLlmRequest,
    CancelRequested,
    EmitEvent,
    LlmFailed,
    LlmStreamEnded,
    LlmTextDelta,
    LlmToolCallsCompleted,
    StartLlmRequest,
    ToolResultReceived,
    ToolTimedOut,
    UserMessageReceived,
)
from transcripts.exchanges import Exchange
from wire import SessionState, StateChanged, ToolCall

Outcome = Literal["ok", "failed", "timed out", "cancelled", "aborted", "unfinished"]
_TURN_ENDS: dict[SessionState, Outcome] = {SessionState.DONE: "ok", SessionState.ERROR: "failed"}


@dataclass(slots=True)
class Span:
    """Something that took time: a model request or a tool call."""

    kind: Literal["model", "tool"]
    key: str
    label: str
    start: float
    end: float | None = None
    first_output: float | None = None
    outcome: Outcome = "unfinished"
    detail: str = ""


@dataclass(slots=True)
class Step:
    """One model request and the tool calls it asked for."""

    model: Span
    tools: list[Span] = field(default_factory=list)

    @property
    def spans(self) -> list[Span]:
        """The request, then its tools, in the order they started."""
        return [self.model, *self.tools]


@dataclass(slots=True)
class Turn:
    """From a user message to the last row before the next one."""

    number: int
    message: str
    start: float
    end: float
    steps: list[Step] = field(default_factory=list)
    outcome: Outcome = "unfinished"

    @property
    def spans(self) -> list[Span]:
        """Every span of the turn, step by step."""
        return [span for step in self.steps for span in step.spans]


class _Builder:
    def __init__(self) -> None:
        self.turns: list[Turn] = []
        self.requests: dict[str, Span] = {}
        self.calls: dict[str, Span] = {}

    def close(self, span: Span | None, at: float, outcome: Outcome, detail: str = "") -> None:
        if span is not None and span.end is None:
            span.end, span.outcome, span.detail = at, outcome, detail

    def exchange(self, exchange: Exchange) -> None:
        event, at = exchange.event, exchange.at
        if isinstance(event, UserMessageReceived):
            if exchange.rejected:
                return
            self.turns.append(Turn(len(self.turns) + 1, event.content, at, at))
        if not self.turns:
            return
        turn = self.turns[-1]
        turn.end = max(turn.end, at)
        if isinstance(event, LlmTextDelta | LlmToolCallsCompleted):
            request = self.requests.get(event.request_id)
            if request is not None and request.first_output is None:
                request.first_output = at
        elif isinstance(event, LlmStreamEnded):
            tokens = f"{event.prompt_tokens} prompt, {event.completion_tokens} completion tokens"
            self.close(
                self.requests.get(event.request_id), at, "ok", f"{event.finish_reason}; {tokens}"
            )
        elif isinstance(event, LlmFailed):
            self.close(self.requests.get(event.request_id), at, "failed", event.code)
        elif isinstance(event, ToolResultReceived):
            outcome: Outcome = "ok" if event.ok else "failed"
            self.close(self.calls.get(event.call_id), at, outcome, event.error_code or "")
        elif isinstance(event, ToolTimedOut):
            self.close(self.calls.get(event.call_id), at, "timed out")
        elif isinstance(event, CancelRequested) and not exchange.rejected:
            turn.outcome = "cancelled"
            for span in turn.spans:
                self.close(span, at, "cancelled")
        turn.end = max(turn.end, exchange.outputs_at)
        for command in exchange.outputs:
            self.command(turn, command, exchange.outputs_at)

    def command(self, turn: Turn, command: object, at: float) -> None:
        if isinstance(command, StartLlmRequest):
            span = Span("model", command.request_id, f"model {command.request_id}", at)
            self.requests[command.request_id] = span
            turn.steps.append(Step(span))
        elif isinstance(command, AbortLlmRequest):
            self.close(self.requests.get(command.request_id), at, "aborted")
        elif isinstance(command, EmitEvent) and isinstance(command.event, ToolCall):
            call = command.event
            span = Span("tool", call.call_id, f"{call.tool} {call.call_id}", at)
            self.calls[call.call_id] = span
            if turn.steps:
                turn.steps[-1].tools.append(span)
        elif isinstance(command, EmitEvent) and isinstance(command.event, StateChanged):
            ended = _TURN_ENDS.get(command.event.state)
            if ended is not None and turn.outcome == "unfinished":
                turn.outcome = ended


def timeline(session: Iterable[Exchange]) -> list[Turn]:
    """The session's turns with their steps; spans still open at a turn's end stay unfinished."""
    builder = _Builder()
    for exchange in session:
        builder.exchange(exchange)
    return builder.turns
