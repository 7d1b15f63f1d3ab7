"""The asyncio driver of one session: executes the core's commands, feeds it network input.

The core decides; this module only does what the commands say. It keeps the
session's numbered events (the resume buffer), the IDE attachment, the LLM
request task and the tool timers.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from orchestrator.commands import (
    AbortLlmRequest,
    ClearToolTimer,
    Command,
    EmitEvent,
    RejectEvent,
    StartLlmRequest,
    StartToolTimer,
)
from orchestrator.core import CoreConfig, SessionCore
from orchestrator.events import Event, ToolTimedOut
from orchestrator.llm_client import LlmClient
from orchestrator.recording import Recorder
from wire import TOOL_NAMES, Error, ErrorSource, Session, StateChanged, encode

log = logging.getLogger(__name__)


class Attachment(Protocol):
    """The IDE connection (through the gateway) a session currently talks to."""

    def send(self, text: str) -> None:
        """Queue one frame; never blocks."""

    def close(self, code: int, reason: str) -> None:
        """Close the connection with a WebSocket close code."""


class SessionRuntime:
    """One live session: its core, its event history and its running work."""

    def __init__(
        self,
        session_id: str,
        config: CoreConfig,
        llm: LlmClient,
        recorder: Recorder,
    ) -> None:
        self.session_id = session_id
        self.core = SessionCore(session_id, config)
        self.events: list[str] = []
        self.attachment: Attachment | None = None
        self._llm = llm
        self._recorder = recorder
        self._llm_task: asyncio.Task[None] | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}

    # ---- input -------------------------------------------------------------------------

    def feed(self, event: Event, origin: Attachment | None = None) -> None:
        """Apply one event and execute what the core says; `origin` gets rejection replies."""
        self._recorder.record_input(self.session_id, event)
        commands = self.core.handle(event)
        self._recorder.record_outputs(self.session_id, commands)
        for command in commands:
            self._execute(command, origin)

    def attach(self, attachment: Attachment, last_seq: int, resumed: bool) -> None:
        """Send the `session` reply, every event after `last_seq`, then go on live."""
        previous, self.attachment = self.attachment, attachment
        if previous is not None and previous is not attachment:
            previous.send(
                encode(
                    Error(
                        code="session_taken_over",
                        message="another connection resumed this session",
                        source=ErrorSource.PROTOCOL,
                        fatal=True,
                    )
                )
            )
            previous.close(4001, "session taken over")
        attachment.send(
            encode(
                Session(
                    session_id=self.session_id,
                    state=self.core.state,
                    last_seq=self.core.last_seq,
                    resumed=resumed,
                    tools=list(TOOL_NAMES),
                )
            )
        )
        for text in self.events[last_seq:]:
            attachment.send(text)

    def detach(self, attachment: Attachment) -> None:
        """The connection went away; the session lives on."""
        if self.attachment is attachment:
            self.attachment = None

    def stop(self) -> None:
        """Cancel the running LLM request and timers: the session is being freed."""
        if self._llm_task is not None:
            self._llm_task.cancel()
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    # ---- commands ----------------------------------------------------------------------

    def _execute(self, command: Command, origin: Attachment | None) -> None:
        if isinstance(command, EmitEvent):
            text = encode(command.event)
            self.events.append(text)
            if self.attachment is not None:
                self.attachment.send(text)
            if isinstance(command.event, StateChanged):
                self._recorder.flush()
        elif isinstance(command, RejectEvent):
            self._reject(command, origin)
        elif isinstance(command, StartLlmRequest):
            self._llm_task = asyncio.get_running_loop().create_task(
                self._llm.stream(command, self.feed)
            )
        elif isinstance(command, AbortLlmRequest):
            if self._llm_task is not None:
                self._llm_task.cancel()
                self._llm_task = None
        elif isinstance(command, StartToolTimer):
            self._timers[command.call_id] = asyncio.get_running_loop().call_later(
                command.seconds, self._time_out, command.call_id
            )
        elif isinstance(command, ClearToolTimer):
            handle = self._timers.pop(command.call_id, None)
            if handle is not None:
                handle.cancel()

    def _time_out(self, call_id: str) -> None:
        self._timers.pop(call_id, None)
        self.feed(ToolTimedOut(call_id))

    def _reject(self, command: RejectEvent, origin: Attachment | None) -> None:
        if origin is None:
            log.info(
                "internal event dropped",
                extra={
                    "session_id": self.session_id,
                    "code": command.code,
                    "detail": command.message,
                },
            )
            return
        origin.send(
            encode(
                Error(
                    code=command.code,
                    message=command.message,
                    source=ErrorSource.PROTOCOL,
                    fatal=False,
                    id=command.message_id,
                    call_id=command.call_id,
                )
            )
        )
