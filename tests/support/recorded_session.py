"""A scripted agent session, driven through a real SessionCore and a recorder as the runtime does.

The model and the IDE are plain functions of the core's commands: asked a
question, the model streams a sentence, reads README.md, then streams its
answer; the IDE answers every tool call with `tool_output`. Inputs are
recorded before the core sees them, outputs right after, and the recorder is
flushed whenever the state changes (a step boundary), as in the runtime.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.commands import Command, EmitEvent, StartLlmRequest
from orchestrator.core import CoreConfig, SessionCore
from orchestrator.events import (
    Event,
    LlmStreamEnded,
    LlmTextDelta,
    LlmToolCallsCompleted,
    ModelToolCall,
    ToolResultReceived,
    UserMessageReceived,
)
from orchestrator.recording import Recorder
from wire import StateChanged, ToolCall

MODEL = "scripted-model"
CONFIG = CoreConfig(max_steps=5, tool_timeout_s=30.0)
README = {"content": "# Demo\n\nHello from the workspace.\n"}
ANSWER = ("It says ", "hello.")


def model_reply(request: StartLlmRequest) -> list[Event]:
    """What the scripted model streams for one request."""
    rid = request.request_id
    if request.messages[-1]["role"] == "user":
        call = ModelToolCall("call_1", "read_file", '{"path": "README.md"}')
        return [
            LlmTextDelta(rid, "Let me "),
            LlmTextDelta(rid, "read the README."),
            LlmToolCallsCompleted(rid, (call,)),
            LlmStreamEnded(rid, "tool_calls", prompt_tokens=50, completion_tokens=12),
        ]
    return [
        *(LlmTextDelta(rid, text) for text in ANSWER),
        LlmStreamEnded(rid, "stop", prompt_tokens=80, completion_tokens=5),
    ]


@dataclass
class SessionDriver:
    """Feeds one core, records every input and output, flushes at step boundaries."""

    core: SessionCore
    recorder: Recorder
    tool_output: Any = field(default_factory=lambda: README)
    on_flush: Callable[[int], None] = lambda rows: None
    rows: int = 0

    @classmethod
    def start(
        cls, recorder: Recorder, session_id: str, config: CoreConfig = CONFIG, **kwargs: Any
    ) -> SessionDriver:
        """A new session, announced to the recorder."""
        recorder.session_started(session_id, config, MODEL)
        return cls(SessionCore(session_id, config), recorder, **kwargs)

    def feed(self, event: Event) -> list[Command]:
        """One input, as the runtime feeds it."""
        session_id = self.core.session_id
        self.recorder.record_input(session_id, event)
        commands = self.core.handle(event)
        self.recorder.record_outputs(session_id, commands)
        self.rows += 1 + len(commands)
        if any(isinstance(c, EmitEvent) and isinstance(c.event, StateChanged) for c in commands):
            self.recorder.flush()
            self.on_flush(self.rows)
        return commands

    def turn(self, message: str) -> None:
        """A whole turn: the user's message, the model's steps, the IDE's tool results."""
        queue: deque[Event] = deque([UserMessageReceived(message)])
        while queue:
            for command in self.feed(queue.popleft()):
                if isinstance(command, StartLlmRequest):
                    queue.extend(model_reply(command))
                elif isinstance(command, EmitEvent) and isinstance(command.event, ToolCall):
                    queue.append(
                        ToolResultReceived(command.event.call_id, ok=True, output=self.tool_output)
                    )


def record_session(
    recorder: Recorder,
    session_id: str,
    messages: Sequence[str] = ("What does the README say?", "And again?"),
    **kwargs: Any,
) -> SessionDriver:
    """Record whole turns, one stale model chunk (rejected), and flush."""
    driver = SessionDriver.start(recorder, session_id, **kwargs)
    for message in messages:
        driver.turn(message)
    driver.feed(LlmTextDelta("t1.1", "a late chunk"))
    recorder.flush()
    return driver
