"""The asyncio driver of one session: executes the core's commands, feeds it network input.

The core decides; this module only does what the commands say. It keeps the
session's newest numbered events (the resume buffer, bounded in characters),
the IDE attachment, the LLM request task and the tool timers.

Seq numbers are never given twice, even across a crash: before an event goes
out whose seq passes the session's reservation, the next `SEQ_RESERVATION`
numbers are reserved in the transcript (a synchronous write, once per that
many events). A session rebuilt after a crash continues after the highest
reserved number; a client that saw events in between gets `resume_gap`.

Backpressure: while the IDE connection is behind (`HOLD_AT_BACKLOG` characters
queued) or gone, streamed model text is held here and fed to the core as one
merged delta when the connection drains, comes back, or the stream moves on.
The core, and so the transcript, sees the merged delta: replay stays exact.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from orchestrator.commands import (
    AbortLlmRequest,
    ClearToolTimer,
    Command,
    EmitEvent,
    RejectEvent,
    StartLlmRequest,
    StartToolTimer,
    StartTurnTimer,
)
from orchestrator.core import CoreConfig, SessionCore
from orchestrator.events import (
    Event,
    LlmFailed,
    LlmTextDelta,
    SeqFloorRaised,
    ToolResultReceived,
    ToolTimedOut,
    TurnDeadlineReached,
)
from orchestrator.history import DEFAULT_MAX_CHARS, EventHistory
from orchestrator.llm_client import LlmClient
from orchestrator.recording import Recorder
from orchestrator.turn_log import TurnLog
from wire import (
    Error,
    ErrorCode,
    ErrorSource,
    Session,
    SessionState,
    StateChanged,
    ToolCall,
    encode,
)

log = logging.getLogger(__name__)

HOLD_AT_BACKLOG = 64 * 1024
SEQ_RESERVATION = 256


class Attachment(Protocol):
    """The IDE connection (through the gateway) a session currently talks to."""

    def send(self, text: str) -> None:
        """Queue one frame; never blocks."""

    def close(self, code: int, reason: str) -> None:
        """Close the connection with a WebSocket close code."""

    @property
    def backlog(self) -> int:
        """Characters queued and not yet written."""

    def notify_when_drained(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the queue is empty."""


class SessionRuntime:
    """One live session: its core, its event history and its running work."""

    def __init__(
        self,
        session_id: str,
        config: CoreConfig,
        llm: LlmClient,
        recorder: Recorder,
        history_chars: int = DEFAULT_MAX_CHARS,
    ) -> None:
        self.session_id = session_id
        self.core = SessionCore(session_id, config)
        self.history = EventHistory(history_chars)
        self.attachment: Attachment | None = None
        self._llm = llm
        self._recorder = recorder
        self._llm_task: asyncio.Task[None] | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._turn_timer: tuple[str, asyncio.TimerHandle] | None = None
        self._tool_calls: dict[str, tuple[int, str]] = {}
        self._held_text: list[str] = []
        self._held_request_id = ""
        self._turn_log = TurnLog(session_id)
        self._reserved_seq = 0
        self._lost: tuple[int, int] | None = None

    # ---- input -------------------------------------------------------------------------

    def feed(self, event: Event, origin: Attachment | None = None) -> None:
        """Apply one event and execute what the core says; `origin` gets rejection replies."""
        self._recorder.record_input(self.session_id, event)
        if type(event) is ToolResultReceived:
            self._turn_log.tool_answered(event.call_id, "ok" if event.ok else "failed")
        commands = self.core.handle(event)
        self._recorder.record_outputs(self.session_id, commands)
        for command in commands:
            self._execute(command, origin)
        if self._turn_timer is not None and self._turn_timer[0] != self.core.turn_id:
            self._turn_timer[1].cancel()  # the turn ended first: its deadline is moot
            self._turn_timer = None

    def feed_llm(self, event: Event) -> None:
        """Feed an event of the LLM stream, holding text back while the IDE is behind."""
        if type(event) is LlmTextDelta:
            attachment = self.attachment
            if self._held_text or attachment is None or attachment.backlog >= HOLD_AT_BACKLOG:
                if not self._held_text and attachment is not None:
                    attachment.notify_when_drained(self._release_held_text)
                self._held_text.append(event.text)
                self._held_request_id = event.request_id
                return
        elif self._held_text:
            self._release_held_text()
        self.feed(event)

    def _release_held_text(self) -> None:
        if self._held_text:
            text = "".join(self._held_text)
            self._held_text.clear()
            self.feed(LlmTextDelta(self._held_request_id, text))

    def attach(self, attachment: Attachment, last_seq: int, resumed: bool) -> None:
        """Send the `session` reply, every event after `last_seq`, then go on live.

        Tool calls still pending that the client had already received are sent
        again (the same frame, the same seq): the client answers each call once.
        """
        previous, self.attachment = self.attachment, attachment
        if previous is not None and previous is not attachment:
            previous.send(
                encode(
                    Error(
                        code=ErrorCode.SESSION_TAKEN_OVER,
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
                    tools=list(self.core.config.tools),
                    features=list(self.core.config.features),
                )
            )
        )
        for text in self.history.after(last_seq):
            attachment.send(text)
        for call_id in self.core.pending_call_ids:
            seq, text = self._tool_calls[call_id]
            if seq <= last_seq:
                attachment.send(text)
        if self._held_text:
            attachment.notify_when_drained(self._release_held_text)

    def resume_gap(self, last_seq: int) -> str | None:
        """Why a client that saw events up to `last_seq` cannot resume without a hole, if so."""
        if last_seq > self.core.last_seq:
            return (
                f"this client saw events up to seq {last_seq} but the session only has "
                f"{self.core.last_seq}: events were lost in an orchestrator crash"
            )
        if self._lost is not None and self._lost[0] < last_seq <= self._lost[1]:
            return (
                f"this client saw events after seq {self._lost[0]} that were lost in an "
                "orchestrator crash"
            )
        if self.history.missing_after(last_seq):
            return (
                f"events after seq {last_seq} are no longer kept (a session keeps its newest "
                f"{self.history.max_chars} characters of events)"
            )
        return None

    def detach(self, attachment: Attachment) -> None:
        """The connection went away; the session lives on."""
        if self.attachment is attachment:
            self.attachment = None

    def rebuild(self, inputs: list[Event], reserved_seq: int) -> None:
        """Bring a fresh runtime to where a recorded session was: feed the core its recorded
        inputs without executing or recording anything, keep the IDE events for resume,
        number on after `reserved_seq` (what the dead process may have sent), then settle
        what the restart interrupted."""
        for event in inputs:
            for command in self.core.handle(event):
                if isinstance(command, EmitEvent):
                    self._keep(command)
        self._recorder.session_resumed(self.session_id)
        recorded = self.core.last_seq
        if reserved_seq > recorded:
            self._lost = (recorded, reserved_seq)
            self.feed(SeqFloorRaised(reserved_seq))
        self._reserved_seq = self.core.last_seq
        request_id = self.core.current_request_id
        if self.core.state is SessionState.STREAMING and request_id is not None:
            self.feed(
                LlmFailed(
                    request_id,
                    ErrorCode.INTERRUPTED,
                    "the orchestrator restarted while the model was answering; "
                    "send your message again",
                )
            )
        for call_id in self.core.pending_call_ids:
            self._execute(StartToolTimer(call_id, self.core.config.tool_timeout_s), None)

    def stop(self) -> None:
        """Cancel the running LLM request and timers: nothing runs for the session after this."""
        self._held_text.clear()
        if self._llm_task is not None:
            self._llm_task.cancel()
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        if self._turn_timer is not None:
            self._turn_timer[1].cancel()
            self._turn_timer = None

    # ---- commands ----------------------------------------------------------------------

    def _execute(self, command: Command, origin: Attachment | None) -> None:
        if isinstance(command, EmitEvent):
            text = self._keep(command)
            seq = command.event.seq or 0
            if seq > self._reserved_seq:
                self._reserved_seq = seq + SEQ_RESERVATION
                self._recorder.reserve_seq(self.session_id, self._reserved_seq)
            if self.attachment is not None:
                self.attachment.send(text)
            self._turn_log.emitted(command.event)
            if isinstance(command.event, StateChanged):
                self._recorder.flush()
        elif isinstance(command, RejectEvent):
            self._reject(command, origin)
        elif isinstance(command, StartLlmRequest):
            self._llm_task = asyncio.get_running_loop().create_task(
                self._llm.stream(command, self.feed_llm)
            )
        elif isinstance(command, AbortLlmRequest):
            self._held_text.clear()
            if self._llm_task is not None:
                self._llm_task.cancel()
                self._llm_task = None
        elif isinstance(command, StartToolTimer):
            self._timers[command.call_id] = asyncio.get_running_loop().call_later(
                command.seconds, self._time_out, command.call_id
            )
        elif isinstance(command, StartTurnTimer):
            deadline = asyncio.get_running_loop().call_later(
                command.seconds, self.feed, TurnDeadlineReached(command.turn_id)
            )
            self._turn_timer = (command.turn_id, deadline)
        elif isinstance(command, ClearToolTimer):
            handle = self._timers.pop(command.call_id, None)
            if handle is not None:
                handle.cancel()

    def _keep(self, command: EmitEvent) -> str:
        """Append the event to the session's history; return its wire text."""
        event = command.event
        text = encode(event)
        self.history.append(event.seq or 0, text)
        if isinstance(event, ToolCall):
            pending = set(self.core.pending_call_ids)
            self._tool_calls = {k: v for k, v in self._tool_calls.items() if k in pending}
            self._tool_calls[event.call_id] = (event.seq, text)
        return text

    def _time_out(self, call_id: str) -> None:
        self._timers.pop(call_id, None)
        self._turn_log.tool_answered(call_id, "timed out")
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
