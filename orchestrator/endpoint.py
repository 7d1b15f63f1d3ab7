"""One client connection's frames, turned into session events, whatever carries them.

The WebSocket link server and the in-process link both hand each frame to a
`ClientEndpoint`: it validates the frame, opens or resumes the session on
`hello`, feeds the session core, and replies with protocol errors.
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from orchestrator.events import (
    ApprovalAnswered,
    ApprovalModeSet,
    CancelRequested,
    FilesRevertedByUser,
    ToolResultReceived,
    UserMessageReceived,
)
from orchestrator.runtime import Attachment, SessionRuntime
from orchestrator.sessions import SessionLimitReached, SessionRegistry
from wire import (
    CLIENT_MESSAGE,
    FEATURE_APPROVALS,
    Approval,
    ApprovalMode,
    Cancel,
    ClientMessage,
    Error,
    ErrorCode,
    ErrorSource,
    FilesReverted,
    Hello,
    SetApproval,
    ToolError,
    ToolErrorCode,
    ToolResult,
    UserMessage,
    encode,
    validation_problems,
)

_TOOL_CODES = frozenset(ToolErrorCode)


def _known_tool_error(error: ToolError | None) -> tuple[str | None, str | None]:
    """The IDE's error code if the protocol defines it; any other becomes `tool_failed`, its
    message naming the IDE's code, so every `error` event carries a code of the schema."""
    if error is None:
        return None, None
    if error.code in _TOOL_CODES:
        return error.code, error.message
    return ErrorCode.TOOL_FAILED, f"[{error.code}] {error.message}"


class ClientEndpoint:
    """The orchestrator's end of one IDE connection."""

    def __init__(
        self,
        registry: SessionRegistry,
        principal: str,
        attachment: Attachment,
        held_elsewhere: int = 0,
    ) -> None:
        """`held_elsewhere`: sessions the token holds on other orchestrators of a cluster,
        counted against its cap when this connection opens one."""
        self.registry = registry
        self.held_elsewhere = held_elsewhere
        self.principal = principal
        self.attachment = attachment
        self.session: SessionRuntime | None = None

    def handle_frame(self, message: str | bytes) -> None:
        """Apply one client frame."""
        if isinstance(message, bytes):
            self._refuse(ErrorCode.INVALID_FRAME, "frames must be UTF-8 JSON text", None)
            return
        frame = self._parse(message)
        if frame is None:
            return
        if self.session is None:
            self.session = self._hello(frame)
        else:
            self._dispatch(self.session, frame)

    def close(self) -> None:
        """The connection is gone; its session lives on for the grace period."""
        if self.session is not None:
            self.registry.detach(self.session, self.attachment)

    def _hello(self, frame: ClientMessage) -> SessionRuntime | None:
        """The first frame opens or resumes a session; anything else is refused until then."""
        if not isinstance(frame, Hello):
            self._refuse(ErrorCode.HELLO_REQUIRED, "send hello first", frame.id)
            return None
        if frame.session_id is None:
            features = frame.capabilities.features if frame.capabilities else []
            if frame.approval == ApprovalMode.ASK.value and FEATURE_APPROVALS not in features:
                self._refuse(
                    ErrorCode.INVALID_FRAME,
                    "hello.approval ask needs the approvals feature in capabilities.features: "
                    "an IDE that cannot answer approval_request would wait forever",
                    frame.id,
                )
                return None
            try:
                session = self.registry.create(
                    self.principal, frame.capabilities, frame.approval, self.held_elsewhere
                )
            except SessionLimitReached as exc:
                self._refuse(ErrorCode.SESSION_LIMIT, str(exc), frame.id)
                return None
            self.registry.attach(session, self.attachment, 0, resumed=False)
            return session
        found = self.registry.get(frame.session_id)
        if found is None or not self.registry.owned_by(frame.session_id, self.principal):
            self._refuse(
                ErrorCode.UNKNOWN_SESSION,
                f"no live session {frame.session_id!r} for this token (expired or never "
                "existed); send hello without session_id to start a new one",
                frame.id,
            )
            return None
        gap = found.resume_gap(frame.last_seq)
        if gap is not None:
            self._refuse(ErrorCode.RESUME_GAP, f"{gap}; start a new session", frame.id)
            return None
        self.registry.attach(found, self.attachment, frame.last_seq, resumed=True)
        return found

    def _dispatch(self, session: SessionRuntime, frame: ClientMessage) -> None:
        if isinstance(frame, UserMessage):
            session.feed(UserMessageReceived(frame.content, frame.id), self.attachment)
        elif isinstance(frame, ToolResult):
            code, message = _known_tool_error(frame.error)
            session.feed(
                ToolResultReceived(
                    call_id=frame.call_id,
                    ok=frame.ok,
                    output=frame.output,
                    error_code=code,
                    error_message=message,
                    message_id=frame.id,
                    error_details=frame.error.details if frame.error else None,
                ),
                self.attachment,
            )
        elif isinstance(frame, Cancel):
            session.feed(CancelRequested(frame.id), self.attachment)
        elif isinstance(frame, Approval):
            event = ApprovalAnswered(
                frame.call_id, frame.decision, frame.message, frame.end_turn, frame.id
            )
            session.feed(event, self.attachment)
        elif isinstance(frame, SetApproval):
            session.feed(ApprovalModeSet(frame.mode, frame.id), self.attachment)
        elif isinstance(frame, FilesReverted):
            reverted = FilesRevertedByUser(frame.turn_id, tuple(frame.paths), frame.id)
            session.feed(reverted, self.attachment)
        else:
            self._refuse(ErrorCode.INVALID_FRAME, "hello was already sent", frame.id)

    def _parse(self, message: str) -> ClientMessage | None:
        """Validate one client frame; reply with a protocol error and return None if it is bad."""
        try:
            return CLIENT_MESSAGE.validate_json(message)
        except ValidationError as exc:
            try:
                raw = json.loads(message)
            except (ValueError, RecursionError):
                self._refuse(ErrorCode.INVALID_JSON, "the frame is not valid JSON", None)
                return None
            frame_id = raw.get("id") if isinstance(raw, dict) else None
            problems = validation_problems(exc, "frame", most=5)
            self._refuse(
                ErrorCode.INVALID_FRAME,
                f"invalid frame: {problems}",
                frame_id if isinstance(frame_id, str) else None,
            )
            return None

    def _refuse(self, code: str, message: str, frame_id: str | None) -> None:
        self.attachment.send(
            encode(
                Error(
                    code=code,
                    message=message,
                    source=ErrorSource.PROTOCOL,
                    fatal=False,
                    id=frame_id,
                )
            )
        )
