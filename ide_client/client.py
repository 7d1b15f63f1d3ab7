"""The IDE side of protocol v1: connect to the gateway, run turns, answer tool calls.

`IdeClient` keeps one WebSocket to the gateway. `run_turn(content)` sends a `user_message`,
shows the turn as it streams, runs every `tool_call` on the workspace (off the event loop, one
at a time in arrival order) and answers it with exactly one `tool_result`, and returns when
the session comes to rest (`done`, `error` or `idle`), or when the gateway refuses the message.

If the connection drops (mid-turn, or while idle between turns), the client reconnects and
resumes the session (`hello` with `session_id` and `last_seq`); replayed events it has already
seen are skipped by `seq`, and a tool call offered again after a resume gets the result already
computed, never a second run. Reconnecting retries with jittered exponential backoff for up to
`reconnect_window` seconds (60 by default) while the gateway is unreachable or says the
orchestrator is unavailable (both restart independently). A message whose turn never started
(sent into a dying connection, or typed while disconnected) is sent again after the resume.

The user in control (protocol 1.2): given an `on_approval` handler, the client declares the
`approvals` feature and answers each `approval_request` with the handler's decision, once (an
`approval_request` offered again after a resume gets the answer already given, never a second
question). Nothing is written before the `tool_call` that follows an allow. `approval` is the
mode a new session starts in, `set_approval` changes it. Given a `CheckpointStore` (the one
its `ToolRunner` writes through), `undo` puts back the files of the last (or a chosen) turn
and tells the service with `files_reverted`, so the model knows.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import random
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from pydantic import BaseModel, ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.protocol import State

from ide_client.approvals import ApprovalHandler
from ide_client.checkpoints import (
    CheckpointCode,
    CheckpointError,
    CheckpointStore,
    Reverted,
    TurnKey,
)
from ide_client.display import ConsoleDisplay, Display
from ide_client.errors import GatewayCode, GatewayError
from ide_client.tools import IMPLEMENTED_TOOLS, ToolRunner
from ide_client.workspace import Workspace
from wire import (
    FEATURE_APPROVALS,
    FEATURE_STEERING,
    SERVER_MESSAGE,
    WRITE_TOOL_NAMES,
    AgentDelta,
    AgentMessage,
    Approval,
    ApprovalMode,
    ApprovalModeChanged,
    ApprovalRequest,
    Cancel,
    Capabilities,
    ClientInfo,
    ContextReport,
    Error,
    ErrorCode,
    FilesReverted,
    FilesRevertedEvent,
    Hello,
    ServerMessage,
    Session,
    SessionState,
    SetApproval,
    StateChanged,
    ToolCall,
    ToolError,
    ToolErrorCode,
    ToolResult,
    UserMessage,
    encode,
)

DEFAULT_URL = "ws://127.0.0.1:8765/v1/ws"
CLIENT_NAME = "agent-service-ide"
MAX_FRAME_BYTES = 16 * 1024 * 1024
AT_REST = frozenset({SessionState.DONE, SessionState.ERROR, SessionState.IDLE})
# Finish reasons of a whole answer (`rejected`: the user rejected a change and ended the turn);
# any other (length, output_budget, deadline) cut it short.
ANSWERED = frozenset({"stop", "tool_calls", "rejected"})
# Close codes after which resuming makes sense: no close frame, going away, server restart.
RESUMABLE_CLOSE_CODES = frozenset({1001, 1006, 1011, 1012, 1013})
# Reconnect policy: attempts spread over at most RECONNECT_WINDOW_S, the n-th after a delay of
# min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2**n), each delay jittered down by up to half.
RECONNECT_WINDOW_S = 60.0
BACKOFF_FIRST_S = 0.25
BACKOFF_MAX_S = 5.0
# What a reconnect attempt may meet while a service restarts: it is worth trying again.
TRANSIENT_CODES = frozenset(
    {GatewayCode.UNREACHABLE, GatewayCode.CONNECTION_LOST, ErrorCode.ORCHESTRATOR_UNAVAILABLE}
)

# How long a request made between turns (set_approval, files_reverted) waits for its event.
REPLY_TIMEOUT_S = 10.0

FrameT = TypeVar("FrameT", bound=BaseModel)


class ToolAnswerer(Protocol):
    """Where tool results come from: `ToolRunner` runs the tools; a replay looks them up."""

    def answer(self, call: ToolCall) -> ToolResult | None:
        """The `tool_result` for this call, or None to leave it unanswered. May block."""
        ...


@dataclass
class Turn:
    """One turn as the client lived it.

    `frames` are the gateway's frames in arrival order (numbered events once each, plus
    replies such as a resume's `session` or a protocol `error`). `state` is where the session
    came to rest (`done`, `error`, `idle`), None when the gateway refused the message. `results`
    are the `tool_result`s the client computed, by call id. `sent`: the `user_message` was
    handed to a connection; `answered`: the gateway reacted to it (an event or a refusal), so
    a resume never sends it twice. `checkpoint_label` names the turn's checkpoints while the
    service's turn id is not known yet.
    """

    content: str
    message_id: str
    frames: list[ServerMessage] = field(default_factory=list)
    results: dict[str, ToolResult] = field(default_factory=dict)
    state: SessionState | None = None
    ended: bool = False
    sent: bool = False
    answered: bool = False
    checkpoint_label: str | None = None

    @property
    def ok(self) -> bool:
        """The turn finished normally (state `done`)."""
        return self.state is SessionState.DONE

    @property
    def text(self) -> str:
        """The agent's streamed answer: every `agent_delta` of the turn, concatenated."""
        return "".join(frame.text for frame in self.of_type(AgentDelta))

    def of_type(self, kind: type[FrameT]) -> list[FrameT]:
        """The received frames of one type, e.g. `turn.of_type(ToolCall)`."""
        return [frame for frame in self.frames if isinstance(frame, kind)]

    def end(self, state: SessionState | None) -> None:
        """The turn is over, with the session resting in `state` (None: refused)."""
        self.state = state
        self.ended = True


class IdeClient:
    """One IDE connection to the gateway, answering tool calls with `tools`.

    Use as `async with IdeClient(url, token, tools) as client: turn = await
    client.run_turn("...")`. Give `session_id` (and `last_seq`) to resume an existing session.
    `on_event` sees every numbered event once, in seq order, before the client acts on it;
    what it raises ends the turn and comes out of `run_turn`. `reconnect_window` bounds the
    time spent reconnecting after one loss; `reconnect_attempts` the resumes in a row that
    bring no new event. `on_approval` answers approval requests (without one the client does
    not declare `approvals`, and `approval` may not be `ask`); `checkpoints` makes `undo`
    possible.
    """

    def __init__(
        self,
        url: str,
        token: str,
        tools: ToolAnswerer,
        *,
        display: Display | None = None,
        on_event: Callable[[ServerMessage], None] | None = None,
        session_id: str | None = None,
        last_seq: int = 0,
        reconnect_attempts: int = 3,
        reconnect_window: float = RECONNECT_WINDOW_S,
        open_timeout: float = 10.0,
        implemented_tools: Sequence[str] = IMPLEMENTED_TOOLS,
        on_approval: ApprovalHandler | None = None,
        approval: ApprovalMode | None = None,
        checkpoints: CheckpointStore | None = None,
    ) -> None:
        if approval is ApprovalMode.ASK and on_approval is None:
            raise ValueError("approval mode `ask` needs an on_approval handler")
        self.url = url
        self.implemented_tools = tuple(implemented_tools)
        self.tools = tools
        self.display: Display = display or ConsoleDisplay(None)
        self.on_event = on_event
        self.session: Session | None = None
        self.session_id = session_id
        self.last_seq = last_seq
        self.reconnect_attempts = reconnect_attempts
        self.reconnect_window = reconnect_window
        self.open_timeout = open_timeout
        self._token = token
        self._ws: ClientConnection | None = None
        self._turn: Turn | None = None
        self._turns_started = 0
        self._running: dict[str, asyncio.Task[None]] = {}
        self._tool_lock = asyncio.Lock()
        self._fatal = False
        self._resumes_without_progress = 0
        self.on_approval = on_approval
        self.approval = approval
        self.checkpoints = checkpoints
        self._turn_id: str | None = None
        self._answers: dict[str, tuple[Approval, int]] = {}
        self._connections = 0
        self._asking: dict[str, asyncio.Task[None]] = {}
        self._requests = 0

    @property
    def features(self) -> list[str]:
        """The optional features this client declares in `hello`."""
        declared = [FEATURE_APPROVALS] if self.on_approval is not None else []
        return [*declared, FEATURE_STEERING]

    @property
    def approval_mode(self) -> str | None:
        """The session's approval mode as the service last said it (None: not connected)."""
        return self.session.approval if self.session is not None else None

    async def __aenter__(self) -> IdeClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def turn_running(self) -> bool:
        """A turn is in progress (a `cancel` would stop it)."""
        return self._turn is not None

    async def connect(self) -> Session:
        """Open the WebSocket and say hello: a new session, or a resume if `session_id` is set.

        While the gateway answers that the orchestrator is unavailable, it tries again (within
        `reconnect_window`); a gateway that cannot be reached at all is an error at once.
        """
        return await self._connect_within(
            frozenset({ErrorCode.ORCHESTRATOR_UNAVAILABLE}), first_delay=False
        )

    async def close(self) -> None:
        """Close the connection (the session lives on at the gateway for its grace period)."""
        if self._ws is not None:
            await self._ws.close()
            self._ws = None

    async def cancel(self) -> None:
        """Ask the gateway to stop the running turn; it then ends in `idle`."""
        await self._send_quietly(Cancel(id=f"cancel-{self._turns_started}"))

    async def catch_up(self) -> list[ServerMessage]:
        """After a resume, read the events the gateway replays, up to the session's `last_seq`.

        Each goes through `on_event` as in a turn; no turn is started and no tool is run. Call
        it right after `connect()`, before the first `run_turn`.
        """
        frames: list[ServerMessage] = []
        while self.session is not None and self.last_seq < self.session.last_seq:
            frame = await self._receive()
            if frame is None:
                break
            seq = getattr(frame, "seq", None)
            if seq is None or seq <= self.last_seq:
                continue
            self._seen(frame, seq)
            frames.append(frame)
        return frames

    async def steer(self, content: str) -> None:
        """Send `content` to the running turn (feature `steering`): the service queues it for
        the turn's next step (`user_message_queued`) rather than answering `busy`."""
        if self._turn is None:
            raise RuntimeError("no turn is running: use run_turn")
        self._requests += 1
        await self._send(UserMessage(content=content, id=f"steer-{self._requests}"))

    async def set_approval(self, mode: ApprovalMode) -> None:
        """Change the session's approval mode. Between turns, wait until the service took it
        (`approval_mode`); during a turn, the event arrives with the turn's. Raises
        GatewayError when the service refuses it."""
        self._requests += 1
        frame = SetApproval(mode=mode.value, id=f"set-approval-{self._requests}")
        if self._turn is not None:
            await self._send(frame)
            return
        await self._exchange(frame, ApprovalModeChanged)

    async def undo(self, turn_id: str | None = None, *, force: bool = False) -> Reverted:
        """Put back the files of the last turn that changed any (or of `turn_id` and every
        later turn), then tell the service, so the model knows. Only between turns.

        CheckpointError when refused (nothing changed); GatewayError when the files are back
        but the service did not take the notice (its message says so).
        """
        if self.checkpoints is None or self.session_id is None:
            raise CheckpointError(
                CheckpointCode.NO_CHECKPOINTS, "this client keeps no checkpoints to undo from"
            )
        if self._turn is not None:
            raise CheckpointError(
                CheckpointCode.TURN_RUNNING, "a turn is running: undo once it has ended"
            )
        reverted = await asyncio.to_thread(
            self.checkpoints.revert, self.session_id, turn_id, force=force
        )
        self._requests += 1
        notice = FilesReverted(
            turn_id=reverted.turn_id,
            paths=list(reverted.paths),
            id=f"files-reverted-{self._requests}",
        )
        try:
            await self._exchange(notice, FilesRevertedEvent)
        except GatewayError as exc:
            raise GatewayError(
                exc.code,
                f"the files are back as before turn {reverted.turn_id}, but the agent was not "
                f"told: {exc.message}",
            ) from None
        return reverted

    async def run_turn(self, content: str) -> Turn:
        """Send `content` as a user message and live through the turn until the session rests.

        Raises GatewayError if the connection is lost for good.
        """
        if self._turn is not None:
            raise RuntimeError("a turn is already running on this client")
        self._turns_started += 1
        turn = Turn(content, f"m{self._turns_started}")
        self._turn = turn
        self._turn_id = None
        try:
            await self._send_message(turn)
            while not turn.ended:
                frame = await self._receive()
                if frame is None:
                    turn.end(SessionState.ERROR)
                else:
                    await self._take(frame, turn)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.cancel(), timeout=1.0)
            raise
        finally:
            turn.ended = True
            self._turn = None
            for asking in self._asking.values():
                asking.cancel()
            await asyncio.gather(
                *self._running.values(), *self._asking.values(), return_exceptions=True
            )
        await self._name_checkpoints(turn)
        self.display.turn_ended(turn.state)
        return turn

    async def _name_checkpoints(self, turn: Turn) -> None:
        """Give the turn's checkpoints the service's turn id, learnt after its first call ran
        (no event naming the turn came before it, e.g. without a context window)."""
        label, named = turn.checkpoint_label, self._turn_id
        if self.checkpoints is None or self.session_id is None or label is None or named is None:
            return
        await asyncio.to_thread(self.checkpoints.relabel, self.session_id, label, named)

    # ---- frames in ---------------------------------------------------------------------

    async def _take(self, frame: ServerMessage, turn: Turn) -> None:
        """Act on one frame of the turn; numbered events already seen are skipped.

        Except a `tool_call` the gateway sends again after a resume (same frame, same seq): it
        is still waiting for its result, so it gets one.
        """
        seq = getattr(frame, "seq", None)
        if seq is not None:
            if seq <= self.last_seq:
                if isinstance(frame, ToolCall):
                    await self._offer(frame, turn)
                elif isinstance(frame, ApprovalRequest):
                    await self._ask(frame)
                return
            self._seen(frame, seq)
            turn.answered = True
        turn.frames.append(frame)
        if isinstance(frame, AgentDelta):
            self.display.agent_text(frame.text)
        elif isinstance(frame, ToolCall):
            await self._offer(frame, turn)
        elif isinstance(frame, ApprovalRequest):
            await self._ask(frame)
        elif isinstance(frame, Error):
            self.display.error(frame)
            self._fatal |= frame.fatal
            if frame.call_id is not None and frame.call_id in self._asking:
                self._asking[frame.call_id].cancel()
            if frame.source == "protocol" and frame.id == turn.message_id:
                turn.answered = True
                turn.end(None)
        elif isinstance(frame, AgentMessage) and frame.finish_reason not in ANSWERED:
            self.display.note(f"the answer was cut: {frame.finish_reason}")
        elif isinstance(frame, ContextReport) and frame.compacted:
            self.display.note(
                f"the earlier conversation was compacted ({frame.compactions} so far); "
                f"context {frame.tokens}/{frame.window} tokens"
            )
        elif isinstance(frame, StateChanged) and frame.state in AT_REST:
            turn.end(frame.state)

    def _seen(self, frame: ServerMessage, seq: int) -> None:
        """A new numbered event: count it, note its turn and mode, show it to `on_event`."""
        self.last_seq = seq
        self._resumes_without_progress = 0
        turn_id = getattr(frame, "turn_id", None)
        if isinstance(turn_id, str):
            self._turn_id = turn_id
        if isinstance(frame, ApprovalModeChanged) and self.session is not None:
            self.session = self.session.model_copy(update={"approval": frame.mode})
        if self.on_event is not None:
            self.on_event(frame)

    async def _ask(self, request: ApprovalRequest) -> None:
        """Ask the user about a new request; answer one offered again with the answer given.

        Only an answer sent on an earlier connection can have been lost: one sent on this
        connection reached the service after its offer, so it is not sent twice.
        """
        known = self._answers.get(request.call_id)
        if known is not None:
            answer, connection = known
            if connection < self._connections:
                self._answers[request.call_id] = (answer, self._connections)
                await self._send_quietly(answer)
        elif request.call_id not in self._asking:
            task = asyncio.create_task(self._get_approval(request))
            self._asking[request.call_id] = task

    async def _get_approval(self, request: ApprovalRequest) -> None:
        try:
            if self.on_approval is None:
                answer = Approval(
                    call_id=request.call_id,
                    decision="reject",
                    message="This IDE cannot ask its user for approval.",
                    id=f"approval-{request.call_id}",
                )
            else:
                decided = await self.on_approval(request)
                answer = Approval(
                    call_id=request.call_id,
                    decision=decided.decision.value,
                    message=decided.message,
                    end_turn=decided.end_turn,
                    id=f"approval-{request.call_id}",
                )
            self._answers[request.call_id] = (answer, self._connections)
            await self._send_quietly(answer)
        finally:
            self._asking.pop(request.call_id, None)

    def _unapproved(self, call: ToolCall) -> ToolResult | None:
        """A refusal for a write call the service sent without saying why it may run.

        Only where the session uses approvals: there every write `tool_call` names its
        approval, so one without it is never run.
        """
        features = self.session.features if self.session is not None else []
        if call.tool not in WRITE_TOOL_NAMES or FEATURE_APPROVALS not in features:
            return None
        if call.approval is not None:
            return None
        error = ToolError(
            code=ToolErrorCode.DECLINED,
            message=f"{call.tool} came without an approval; the IDE did not run it",
        )
        return ToolResult(call_id=call.call_id, ok=False, error=error)

    async def _offer(self, call: ToolCall, turn: Turn) -> None:
        """Run a new call; answer a call offered again with the result it already has."""
        refused = self._unapproved(call)
        if refused is not None and call.call_id not in turn.results:
            turn.results[call.call_id] = refused
            self.display.tool_outcome(call, refused)
        known = turn.results.get(call.call_id)
        if known is not None:
            await self._send_quietly(known)
        elif call.call_id not in self._running:
            task = asyncio.create_task(self._run_tool(call, turn))
            self._running[call.call_id] = task

    async def _run_tool(self, call: ToolCall, turn: Turn) -> None:
        try:
            async with self._tool_lock:
                if turn.ended:
                    return
                if self.checkpoints is not None and self.session_id is not None:
                    turn_id = self._turn_id
                    if turn_id is None:
                        turn_id = turn.checkpoint_label or f"unnamed-{secrets.token_hex(4)}"
                        turn.checkpoint_label = turn_id
                    self.checkpoints.current = TurnKey(self.session_id, turn_id)
                result = await asyncio.to_thread(self.tools.answer, call)
            if result is None:
                return
            turn.results[call.call_id] = result
            if not turn.ended:
                await self._send_quietly(result)
            self.display.tool_outcome(call, result)
        finally:
            self._running.pop(call.call_id, None)

    async def _receive(self) -> ServerMessage | None:
        """The next frame, resuming the session if the connection drops.

        None: the connection ended after a fatal error, so the session is over.
        """
        while True:
            try:
                raw = await self._connection().recv()
            except ConnectionClosed as closed:
                if self._fatal:
                    return None
                await self._resume(_close_code(closed), _close_reason(closed))
                continue
            return _decode(raw)

    async def _exchange(self, frame: SetApproval | FilesReverted, kind: type[BaseModel]) -> None:
        """Send `frame` between turns and read until its event `kind` (seen by `on_event`
        like any other), or raise GatewayError with the service's refusal."""
        await self._send(frame)
        try:
            async with asyncio.timeout(REPLY_TIMEOUT_S):
                while True:
                    reply = await self._receive()
                    if reply is None:
                        raise GatewayError(GatewayCode.CONNECTION_LOST, "the session ended")
                    seq = getattr(reply, "seq", None)
                    if seq is not None and seq > self.last_seq:
                        self._seen(reply, seq)
                        if isinstance(reply, kind):
                            return
                    if isinstance(reply, Error) and reply.id == frame.id:
                        raise GatewayError(reply.code, reply.message)
        except TimeoutError:
            raise GatewayError(
                GatewayCode.CONNECTION_LOST,
                f"no answer to {frame.type} within {REPLY_TIMEOUT_S:g} s",
            ) from None

    async def _send_message(self, turn: Turn) -> None:
        """Send the turn's `user_message`, first resuming a connection lost while idle."""
        message = UserMessage(content=turn.content, id=turn.message_id)
        if self._ws is not None and self._ws.state is not State.OPEN:
            await self._resume(self._ws.close_code or 1006, "lost while idle")
        turn.sent = True
        try:
            await self._connection().send(encode(message))
        except ConnectionClosed as closed:
            await self._resume(_close_code(closed), _close_reason(closed))

    # ---- connection ----------------------------------------------------------------------

    async def _open(self) -> None:
        self._connections += 1
        try:
            self._ws = await connect(
                self.url,
                additional_headers={"Authorization": f"Bearer {self._token}"},
                open_timeout=self.open_timeout,
                max_size=MAX_FRAME_BYTES,
                proxy=None,
            )
        except InvalidURI as exc:
            raise GatewayError(GatewayCode.INVALID_URL, f"invalid gateway URL: {exc}") from None
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status == 401:
                raise GatewayError(
                    GatewayCode.UNAUTHORIZED, "the gateway refused the token (HTTP 401)"
                ) from None
            if status >= 500:
                raise GatewayError(
                    GatewayCode.UNREACHABLE, f"the gateway is unavailable (HTTP {status})"
                ) from None
            raise GatewayError(
                GatewayCode.REJECTED, f"the gateway refused the connection (HTTP {status})"
            ) from None
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise GatewayError(
                GatewayCode.UNREACHABLE, f"cannot reach the gateway at {self.url}: {exc}"
            ) from None

    async def _hello(self) -> Session:
        """Say hello on the fresh connection and read the `session` reply."""
        client = ClientInfo(name=CLIENT_NAME, version=_version())
        capabilities = Capabilities(tools=list(self.implemented_tools), features=self.features)
        resuming = self.session_id is not None
        if resuming:
            hello = Hello(
                protocol=1,
                session_id=self.session_id,
                last_seq=self.last_seq,
                client=client,
            )
        else:
            hello = Hello(protocol=1, client=client, capabilities=capabilities)
            if self.approval is not None:
                hello = hello.model_copy(update={"approval": self.approval.value})
        try:
            await self._connection().send(encode(hello))
            reply = _decode(await self._connection().recv())
        except ConnectionClosed as closed:
            raise GatewayError(
                GatewayCode.CONNECTION_LOST,
                f"the gateway closed the connection during hello ({_close_reason(closed)})",
            ) from None
        if isinstance(reply, Error):
            await self.close()
            raise GatewayError(reply.code, f"the gateway refused the session: {reply.message}")
        if not isinstance(reply, Session):
            raise GatewayError(
                GatewayCode.BAD_FRAME, f"expected a session reply to hello, got {reply.type!r}"
            )
        if resuming and not reply.resumed:
            raise GatewayError(
                ErrorCode.UNKNOWN_SESSION, f"the gateway did not resume session {self.session_id}"
            )
        self.session = reply
        self.session_id = reply.session_id
        if self._turn is not None and resuming:
            self._turn.frames.append(reply)
        return reply

    async def _resume(self, code: int, reason: str) -> None:
        """Reconnect and resume after a lost connection, or raise GatewayError.

        If the running turn's message got no answer and the resumed session shows nothing new
        and is at rest, the message never arrived: it is sent again.
        """
        self._resumes_without_progress += 1
        if (
            self.session_id is None
            or code not in RESUMABLE_CLOSE_CODES
            or self._resumes_without_progress > self.reconnect_attempts
        ):
            raise GatewayError(
                GatewayCode.CONNECTION_LOST, f"the gateway closed the connection ({reason})"
            )
        self.display.note(
            f"connection lost ({reason}); resuming session {self.session_id} "
            f"after event {self.last_seq}"
        )
        try:
            session = await self._connect_within(TRANSIENT_CODES, first_delay=True)
        except GatewayError as exc:
            if exc.code == ErrorCode.UNKNOWN_SESSION and not self._turn_answered():
                session = await self._start_over()
            elif exc.code not in TRANSIENT_CODES:
                raise
            else:
                raise GatewayError(
                    GatewayCode.CONNECTION_LOST,
                    f"the connection was lost ({reason}) and could not be resumed within "
                    f"{self.reconnect_window:g} s: {exc.message}",
                ) from None
        turn = self._turn
        if (
            turn is not None
            and turn.sent
            and not turn.answered
            and session.last_seq == self.last_seq
            and session.state in AT_REST
        ):
            await self._send(UserMessage(content=turn.content, id=turn.message_id))

    def _turn_answered(self) -> bool:
        return self._turn is not None and self._turn.answered

    async def _start_over(self) -> Session:
        """The restarted service no longer knows the session (it kept no transcripts): open
        a new one, so the message being sent is not lost; the earlier history is gone."""
        self.display.note(
            f"session {self.session_id} is gone (the service restarted without its "
            "transcripts); starting a new session"
        )
        await self.close()
        self.session_id, self.last_seq = None, 0
        return await self._connect_within(TRANSIENT_CODES, first_delay=False)

    async def _connect_within(self, transient: frozenset[str], *, first_delay: bool) -> Session:
        """Open and say hello, trying again with backoff on `transient` failures until
        `reconnect_window` is spent; the last failure is raised then."""
        deadline = time.monotonic() + self.reconnect_window
        attempt = 0
        if first_delay:
            await asyncio.sleep(_backoff(attempt))
            attempt += 1
        while True:
            try:
                await self._open()
                return await self._hello()
            except GatewayError as exc:
                delay = _backoff(attempt)
                attempt += 1
                if exc.code not in transient or time.monotonic() + delay > deadline:
                    raise
                self.display.note(f"{exc.message}; trying again in {delay:.1f} s")
                await asyncio.sleep(delay)

    def _connection(self) -> ClientConnection:
        if self._ws is None:
            raise RuntimeError("not connected: call connect() first")
        return self._ws

    async def _send(self, frame: BaseModel) -> None:
        try:
            await self._connection().send(encode(frame))
        except ConnectionClosed as closed:
            raise GatewayError(
                GatewayCode.CONNECTION_LOST,
                f"the gateway closed the connection ({_close_reason(closed)})",
            ) from None

    async def _send_quietly(self, frame: BaseModel) -> None:
        """Send if connected; a lost frame is sent again when the gateway asks again."""
        with contextlib.suppress(ConnectionClosed, RuntimeError):
            await self._connection().send(encode(frame))


async def run_one_turn(
    url: str,
    token: str,
    workspace: str | Path,
    content: str,
    *,
    display: ConsoleDisplay | None = None,
) -> Turn:
    """Connect, run one turn with tools on `workspace`, and close: one call per scenario."""
    tools = ToolRunner(Workspace(workspace))
    async with IdeClient(url, token, tools, display=display) as client:
        return await client.run_turn(content)


def _decode(raw: str | bytes) -> ServerMessage:
    if isinstance(raw, bytes):
        raise GatewayError(GatewayCode.BAD_FRAME, "the gateway sent a binary frame")
    try:
        return SERVER_MESSAGE.validate_json(raw)
    except ValidationError as exc:
        raise GatewayError(
            GatewayCode.BAD_FRAME,
            f"the gateway sent a frame this client does not understand: {exc.errors()[0]['msg']}"
            f" in {raw[:200]!r}",
        ) from None


def _backoff(attempt: int) -> float:
    """The delay before reconnect attempt `attempt` (0-based): exponential, capped, jittered."""
    ceiling = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2.0**attempt)
    return ceiling * random.uniform(0.5, 1.0)


def _close_code(closed: ConnectionClosed) -> int:
    return closed.rcvd.code if closed.rcvd is not None else 1006


def _close_reason(closed: ConnectionClosed) -> str:
    if closed.rcvd is None:
        return "no close frame"
    return f"code {closed.rcvd.code}" + (f": {closed.rcvd.reason}" if closed.rcvd.reason else "")


def _version() -> str:
    try:
        return importlib.metadata.version("agent-service")
    except importlib.metadata.PackageNotFoundError:
        return "0"
