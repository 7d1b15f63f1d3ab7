"""Protocol v1 between the IDE and the gateway: every frame, as pydantic models.

One discriminated union on `type` per direction (`ClientMessage`, `ServerMessage`).
`agent-service schema` prints their JSON Schema for IDE teams.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

PROTOCOL_VERSION = 1


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


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- client -> gateway ------------------------------------------------------------------


class ClientInfo(_Frame):
    """Who the client is, for logs."""

    name: str = Field(max_length=200)
    version: str = Field(max_length=200)


class Hello(_Frame):
    """First frame: open a new session, or resume one after `last_seq`."""

    type: Literal["hello"] = "hello"
    protocol: Literal[1]
    id: str | None = None
    session_id: str | None = None
    last_seq: int = Field(default=0, ge=0)
    client: ClientInfo | None = None


class UserMessage(_Frame):
    """Starts a turn."""

    type: Literal["user_message"] = "user_message"
    content: str
    id: str | None = None


class ToolError(_Frame):
    """Why a tool did not run, as the IDE reports it."""

    code: str
    message: str


class ToolResult(_Frame):
    """The IDE's answer to one `tool_call`."""

    type: Literal["tool_result"] = "tool_result"
    call_id: str
    ok: bool
    output: Any = None
    error: ToolError | None = None
    id: str | None = None


class Cancel(_Frame):
    """Stops the running turn."""

    type: Literal["cancel"] = "cancel"
    id: str | None = None


ClientMessage = Annotated[Hello | UserMessage | ToolResult | Cancel, Field(discriminator="type")]
CLIENT_MESSAGE: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


# ---- gateway -> client ------------------------------------------------------------------


class Session(_Frame):
    """Reply to `hello`."""

    type: Literal["session"] = "session"
    session_id: str
    state: SessionState
    last_seq: int
    resumed: bool
    protocol: Literal[1] = 1
    tools: list[str]


class StateChanged(_Frame):
    """Numbered: the session's state machine moved."""

    type: Literal["state"] = "state"
    session_id: str
    seq: int
    state: SessionState
    previous: SessionState


class AgentDelta(_Frame):
    """Numbered: streamed text of the agent's answer."""

    type: Literal["agent_delta"] = "agent_delta"
    session_id: str
    seq: int
    turn_id: str
    text: str


class ToolCall(_Frame):
    """Numbered: run a tool in the IDE and answer with `tool_result`."""

    type: Literal["tool_call"] = "tool_call"
    session_id: str
    seq: int
    call_id: str
    tool: str
    arguments: dict[str, Any]


class Usage(_Frame):
    """Tokens the model used over the whole turn."""

    prompt_tokens: int
    completion_tokens: int


class AgentMessage(_Frame):
    """Numbered: the turn's final answer (all its deltas, concatenated)."""

    type: Literal["agent_message"] = "agent_message"
    session_id: str
    seq: int
    turn_id: str
    content: str
    finish_reason: str
    usage: Usage


class ContextUsage(_Frame):
    """Tokens the model used; `estimated` when the upstream did not report some of them."""

    prompt_tokens: int
    completion_tokens: int
    estimated: bool


class ContextReport(_Frame):
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


class Error(_Frame):
    """Something went wrong. Numbered (with `session_id`, `seq`) unless `source` is protocol."""

    type: Literal["error"] = "error"
    code: str
    message: str
    source: ErrorSource
    fatal: bool = False
    call_id: str | None = None
    id: str | None = None
    session_id: str | None = None
    seq: int | None = None


ServerMessage = Annotated[
    Session | StateChanged | AgentDelta | ToolCall | AgentMessage | ContextReport | Error,
    Field(discriminator="type"),
]
SERVER_MESSAGE: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)

NumberedEvent = StateChanged | AgentDelta | ToolCall | AgentMessage | ContextReport | Error


def encode(frame: BaseModel) -> str:
    """One frame as the JSON text sent on the wire (absent optionals left out)."""
    return frame.model_dump_json(exclude_none=True)


def json_schema() -> dict[str, Any]:
    """JSON Schema of both directions, for generating client models."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "agent-service IDE protocol v1",
        "client_to_server": CLIENT_MESSAGE.json_schema(),
        "server_to_client": SERVER_MESSAGE.json_schema(),
    }
