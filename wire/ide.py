"""Protocol v1 between the IDE and the gateway: every frame, as pydantic models.

One discriminated union on `type` per direction (`ClientMessage`, `ServerMessage`).
`wire.schema` turns them into the JSON Schema document IDE teams generate code from.

Reading rules, the same for every message: client frames are strict about types
(`ok: "yes"` is refused), an optional field sent as `null` means absent, and
unknown fields are ignored, so an IDE written for a later minor version still
talks to this one. Server frames never carry `null` and readers ignore unknown fields.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    WithJsonSchema,
    model_validator,
)

from wire.tools import CORE_TOOL_NAMES

PROTOCOL_VERSION = 1
PROTOCOL_MINOR = 2
"""Minor version of protocol 1 that this code speaks; the `session` reply says it."""
FEATURE_APPROVALS = "approvals"
"""The IDE answers `approval_request` events: write calls may wait for the user (1.2)."""
FEATURE_STEERING = "steering"
"""A `user_message` during a turn is queued for its next step instead of refused (1.2)."""
FEATURES: tuple[str, ...] = (FEATURE_APPROVALS, FEATURE_STEERING)
"""Optional features this server can use when the IDE declares them."""


class SessionState(StrEnum):
    """The five states of a session's state machine."""

    IDLE = "idle"
    STREAMING = "streaming"
    AWAITING_TOOL = "awaiting_tool"
    ERROR = "error"
    DONE = "done"


class ErrorSource(StrEnum):
    """Who an `error` is about: the IDE's tool, the model, the agent, or the frame itself."""

    IDE = "ide"
    LLM = "llm"
    AGENT = "agent"
    PROTOCOL = "protocol"


SCHEMA_DEFINITION = "x-definition"
"""Marks a field the schema document points at one of its own definitions (`wire.schema`)."""
ToolNameText = Annotated[str, WithJsonSchema({"type": "string", SCHEMA_DEFINITION: "ToolName"})]
"""An IDE tool name of the registry (`wire.tools`); the schema lists them as an enum."""
ErrorCodeText = Annotated[str, WithJsonSchema({"type": "string", SCHEMA_DEFINITION: "ErrorCode"})]
"""A code of `wire.codes.SENT_CODES`; the schema lists them as an enum."""


class ApprovalMode(StrEnum):
    """Who decides whether a write tool runs: nobody may (`read-only`), the user per call
    (`ask`), or the session itself (`auto-edit`)."""

    READ_ONLY = "read-only"
    ASK = "ask"
    AUTO_EDIT = "auto-edit"


class Decision(StrEnum):
    """The user's answer to an `approval_request`."""

    ALLOW_ONCE = "allow_once"
    ALLOW_TOOL = "allow_tool"
    ALLOW_PATH = "allow_path"
    REJECT = "reject"


class ApprovalSource(StrEnum):
    """Why a write `tool_call` runs: the user allowed it, a rule the user set for the session
    (`allow_tool`, `allow_path`) covers it, or the session's mode (`auto-edit`) lets it."""

    USER = "user"
    SESSION = "session"
    MODE = "mode"


ApprovalModeText = Annotated[
    Literal["read-only", "ask", "auto-edit"],
    WithJsonSchema({"type": "string", SCHEMA_DEFINITION: "ApprovalMode"}),
]
"""An `ApprovalMode` value; client frames are strict, so the wire type is its literal."""
DecisionText = Annotated[
    Literal["allow_once", "allow_tool", "allow_path", "reject"],
    WithJsonSchema({"type": "string", SCHEMA_DEFINITION: "Decision"}),
]
"""A `Decision` value, as a client frame carries it."""
ApprovalSourceText = Annotated[
    str, WithJsonSchema({"type": "string", SCHEMA_DEFINITION: "ApprovalSource"})
]
"""An `ApprovalSource` value, as a server frame carries it."""
ApprovalModeName = Annotated[
    str, WithJsonSchema({"type": "string", SCHEMA_DEFINITION: "ApprovalMode"})
]
"""An `ApprovalMode` value, as a server frame carries it."""
DecisionName = Annotated[str, WithJsonSchema({"type": "string", SCHEMA_DEFINITION: "Decision"})]
"""A `Decision` value, as a server frame carries it."""


def _exactly_protocol_1(value: Any) -> Any:
    """`true` and `1.0` equal 1 in Python; the protocol number is the JSON integer 1."""
    if type(value) is not int:
        raise ValueError("protocol must be the integer 1")
    return value


class _ClientFrame(BaseModel):
    """A part of a frame the IDE writes: strict types, null is absent, unknown fields ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _null_means_absent(cls, data: Any) -> Any:
        """Generated clients write `null` for an unset optional field: treat it as left out."""
        if not isinstance(data, dict):
            return data
        optional = {name for name, field in cls.model_fields.items() if not field.is_required()}
        return {
            key: value for key, value in data.items() if value is not None or key not in optional
        }


class _ServerFrame(BaseModel):
    """A part of a frame the services write; readers ignore fields they do not know."""

    model_config = ConfigDict(extra="ignore", frozen=True)


# ---- client -> gateway ------------------------------------------------------------------


class ClientInfo(_ClientFrame):
    """Who the client is, for logs."""

    name: str = Field(max_length=200)
    version: str = Field(max_length=200)


class Capabilities(_ClientFrame):
    """What the IDE implements: the session offers the model only these tools."""

    tools: list[Annotated[str, Field(max_length=200)]] | None = Field(
        default=None,
        max_length=256,
        description=f"IDE tool names the IDE runs. Absent: the core tools "
        f"({', '.join(CORE_TOOL_NAMES)}). Names the server does not know are ignored; the "
        "session reply lists the tools the session uses.",
    )
    features: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list,
        max_length=256,
        description="Optional features the IDE handles; the session reply lists those in use.",
    )


class Hello(_ClientFrame):
    """First frame: open a new session, or resume one after `last_seq`."""

    type: Literal["hello"] = "hello"
    protocol: Annotated[Literal[1], BeforeValidator(_exactly_protocol_1)]
    id: str | None = None
    session_id: str | None = None
    last_seq: int = Field(default=0, ge=0)
    client: ClientInfo | None = None
    capabilities: Capabilities | None = Field(
        default=None,
        description="Used when a session is opened; a resumed session keeps the ones it "
        "was opened with.",
    )
    approval: ApprovalModeText | None = Field(
        default=None,
        description="The approval mode a new session starts in. Absent: `ask` when the IDE "
        "declares the `approvals` feature, else `auto-edit`; `ask` needs that feature.",
    )


class UserMessage(_ClientFrame):
    """Starts a turn."""

    type: Literal["user_message"] = "user_message"
    content: str
    id: str | None = None


class ToolError(_ClientFrame):
    """Why a tool did not run, as the IDE reports it.

    `message` is for the model and reaches it unchanged; `details` optionally says the same
    as JSON (e.g. apply_patch's conflicts) and reaches the model with it.
    """

    code: str
    message: str
    details: dict[str, Any] | None = None


class ToolResult(_ClientFrame):
    """The IDE's answer to one `tool_call`."""

    type: Literal["tool_result"] = "tool_result"
    call_id: str
    ok: bool
    output: Any = None
    error: ToolError | None = None
    id: str | None = None


class Cancel(_ClientFrame):
    """Stops the running turn."""

    type: Literal["cancel"] = "cancel"
    id: str | None = None


class SetApproval(_ClientFrame):
    """Changes the session's approval mode (answered by the numbered `approval_mode`)."""

    type: Literal["set_approval"] = "set_approval"
    mode: ApprovalModeText
    id: str | None = None


class Approval(_ClientFrame):
    """The user's decision on one `approval_request` (feature `approvals`)."""

    type: Literal["approval"] = "approval"
    call_id: str
    decision: DecisionText
    message: str | None = Field(
        default=None,
        max_length=10_000,
        description="With `reject`: why, for the model (it gets it in the tool's result).",
    )
    end_turn: bool = Field(
        default=False, description="With `reject`: end the turn instead of letting it go on."
    )
    id: str | None = None


class FilesReverted(_ClientFrame):
    """The IDE put these files back as they were before a turn; the model is told so."""

    type: Literal["files_reverted"] = "files_reverted"
    turn_id: str = Field(max_length=200)
    paths: list[Annotated[str, Field(max_length=4096)]] = Field(max_length=10_000)
    id: str | None = None


ClientMessage = Annotated[
    Hello | UserMessage | ToolResult | Cancel | SetApproval | Approval | FilesReverted,
    Field(discriminator="type"),
]
CLIENT_MESSAGE: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


# ---- gateway -> client ------------------------------------------------------------------


class Session(_ServerFrame):
    """Reply to `hello`."""

    type: Literal["session"] = "session"
    session_id: str
    state: SessionState
    last_seq: int
    resumed: bool
    protocol: Literal[1] = 1
    protocol_minor: int = PROTOCOL_MINOR
    tools: list[ToolNameText] = Field(description="The tools the model may call in this session.")
    features: list[str] = Field(
        default_factory=list, description="The optional features this session uses."
    )
    approval: ApprovalModeName = Field(
        default=ApprovalMode.AUTO_EDIT.value, description="The session's approval mode now."
    )


class StateChanged(_ServerFrame):
    """Numbered: the session's state machine moved."""

    type: Literal["state"] = "state"
    session_id: str
    seq: int
    state: SessionState
    previous: SessionState


class AgentDelta(_ServerFrame):
    """Numbered: streamed text of the agent's answer."""

    type: Literal["agent_delta"] = "agent_delta"
    session_id: str
    seq: int
    turn_id: str
    text: str


class ToolCall(_ServerFrame):
    """Numbered: run a tool in the IDE and answer with `tool_result`."""

    type: Literal["tool_call"] = "tool_call"
    session_id: str
    seq: int
    call_id: str
    tool: ToolNameText
    arguments: dict[str, Any]
    approval: ApprovalSourceText | None = Field(
        default=None,
        description="Why a write tool runs (sessions with the `approvals` feature only); "
        "absent for the other tools.",
    )


class ApprovalRequest(_ServerFrame):
    """Numbered: a write call waits for the user; answer with `approval` (feature
    `approvals`). `tool` and `arguments` are typed as in `tool_call`."""

    type: Literal["approval_request"] = "approval_request"
    session_id: str
    seq: int
    turn_id: str
    call_id: str
    tool: ToolNameText
    arguments: dict[str, Any]


class ApprovalDecision(_ServerFrame):
    """Numbered: the user's decision on a call, as the session took it."""

    type: Literal["approval_decision"] = "approval_decision"
    session_id: str
    seq: int
    turn_id: str
    call_id: str
    decision: DecisionName
    message: str | None = None


class ApprovalModeChanged(_ServerFrame):
    """Numbered: the session's approval mode changed (`set_approval`)."""

    type: Literal["approval_mode"] = "approval_mode"
    session_id: str
    seq: int
    mode: ApprovalModeName


class UserMessageQueued(_ServerFrame):
    """Numbered: a message sent during a turn, kept for the turn's next step (feature
    `steering`)."""

    type: Literal["user_message_queued"] = "user_message_queued"
    session_id: str
    seq: int
    turn_id: str
    text: str


class FilesRevertedEvent(_ServerFrame):
    """Numbered: the IDE reverted these files to before `turn_id`; the model was told."""

    type: Literal["files_reverted"] = "files_reverted"
    session_id: str
    seq: int
    turn_id: str
    paths: list[str]


class Usage(_ServerFrame):
    """Tokens the model used over the whole turn."""

    prompt_tokens: int
    completion_tokens: int


class AgentMessage(_ServerFrame):
    """Numbered: the turn's final answer (all its deltas, concatenated)."""

    type: Literal["agent_message"] = "agent_message"
    session_id: str
    seq: int
    turn_id: str
    content: str
    finish_reason: str
    usage: Usage


class ContextUsage(_ServerFrame):
    """Tokens the model used; `estimated` when the upstream did not report some of them."""

    prompt_tokens: int
    completion_tokens: int
    estimated: bool


class ContextReport(_ServerFrame):
    """Numbered: the size of the next model request against the model's context window.

    Sent before every model request of a turn. `tokens` is the request's prompt size
    (the upstream's last `usage.prompt_tokens` plus an estimate of what was added since,
    or an estimate alone: then `estimated`). `compactions` counts the times the older
    conversation was replaced by a summary so far in the session, and `compacted` says
    one happened just before this request; `elided` counts the old tool outputs replaced
    by a marker in this request. `turn_usage` and `session_usage` are the tokens used so
    far, as the upstream reported them or estimated (then flagged).
    """

    type: Literal["context"] = "context"
    session_id: str
    seq: int
    turn_id: str
    tokens: int
    window: int
    estimated: bool
    compactions: int
    compacted: bool
    elided: int
    turn_usage: ContextUsage
    session_usage: ContextUsage


class Error(_ServerFrame):
    """Something went wrong. Numbered (with `session_id`, `seq`) unless `source` is protocol."""

    type: Literal["error"] = "error"
    code: ErrorCodeText
    message: str
    source: ErrorSource
    fatal: bool = False
    call_id: str | None = None
    id: str | None = None
    session_id: str | None = None
    seq: int | None = None


ServerMessage = Annotated[
    Session
    | StateChanged
    | AgentDelta
    | ToolCall
    | AgentMessage
    | ContextReport
    | Error
    | ApprovalRequest
    | ApprovalDecision
    | ApprovalModeChanged
    | UserMessageQueued
    | FilesRevertedEvent,
    Field(discriminator="type"),
]
SERVER_MESSAGE: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)

NumberedEvent = (
    StateChanged
    | AgentDelta
    | ToolCall
    | AgentMessage
    | ContextReport
    | Error
    | ApprovalRequest
    | ApprovalDecision
    | ApprovalModeChanged
    | UserMessageQueued
    | FilesRevertedEvent
)


def encode(frame: BaseModel) -> str:
    """One frame as the JSON text sent on the wire (absent optionals left out)."""
    return frame.model_dump_json(exclude_none=True)
