"""One short line per stored row, for `transcripts show`: what happened, not its JSON."""

from __future__ import annotations

import json
from typing import Any

from orchestrator import (
    COMMAND_TAGS,
    EVENT_TAGS,
    AbortLlmRequest,
    ApprovalAnswered,
    ApprovalModeSet,
    ClearToolTimer,
    Command,
    EmitEvent,
    Event,
    FilesRevertedByUser,
    LlmFailed,
    LlmStreamEnded,
    LlmTextDelta,
    LlmToolCallsCompleted,
    RejectEvent,
    StartLlmRequest,
    StartToolTimer,
    ToolResultReceived,
    ToolTimedOut,
    UserMessageReceived,
)
from wire import (
    AgentDelta,
    AgentMessage,
    ApprovalDecision,
    ApprovalModeChanged,
    ApprovalRequest,
    Error,
    FilesRevertedEvent,
    StateChanged,
    ToolCall,
    UserMessageQueued,
)

TEXT_CHARS = 100


def _quoted(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    quoted = json.dumps(text, ensure_ascii=False)
    return quoted if len(quoted) <= TEXT_CHARS else quoted[: TEXT_CHARS - 1] + "…"


def _compact(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "…"


def describe_event(event: Event) -> str:
    """An input row: its type, then what matters of it."""
    tag = EVENT_TAGS[type(event)]
    match event:
        case UserMessageReceived(content=content):
            return f"{tag} {_quoted(content)}"
        case LlmTextDelta(request_id=request, text=text):
            return f"{tag} {request} {_quoted(text)}"
        case LlmToolCallsCompleted(request_id=request, calls=calls):
            return f"{tag} {request}: " + ", ".join(f"{c.name} {c.id}" for c in calls)
        case LlmStreamEnded(request_id=request):
            return (
                f"{tag} {request} {event.finish_reason}: {event.prompt_tokens} prompt, "
                f"{event.completion_tokens} completion tokens"
            )
        case LlmFailed(request_id=request, code=code, message=message):
            return f"{tag} {request} {code}: {_quoted(message)}"
        case ToolResultReceived(call_id=call, ok=True, output=output):
            return f"{tag} {call} ok {_compact(output)}"
        case ToolResultReceived(call_id=call, error_code=code, error_message=message):
            return f"{tag} {call} failed {code}: {_quoted(message or '')}"
        case ToolTimedOut(call_id=call):
            return f"{tag} {call}"
        case ApprovalAnswered(call_id=call, decision=decision, message=message, end_turn=end):
            why = f" {_quoted(message)}" if message else ""
            return f"{tag} {call} {decision}{why}{', ending the turn' if end else ''}"
        case ApprovalModeSet(mode=mode):
            return f"{tag} {mode}"
        case FilesRevertedByUser(turn_id=turn, paths=paths):
            return f"{tag} {turn}: {', '.join(paths)}"
    return tag


def _emitted(event: object) -> str:
    match event:
        case StateChanged(previous=previous, state=state):
            return f"state {previous} -> {state}"
        case AgentDelta(text=text):
            return f"agent_delta {_quoted(text)}"
        case ToolCall(call_id=call, tool=tool, arguments=arguments):
            return f"tool_call {call} {tool} {_compact(arguments)}"
        case AgentMessage(turn_id=turn, finish_reason=reason, content=content):
            return f"agent_message {turn} {reason}, {len(content)} characters"
        case Error(code=code, source=source, message=message):
            return f"error {code} from {source}: {_quoted(message)}"
        case ApprovalRequest(call_id=call, tool=tool, arguments=arguments):
            return f"approval_request {call} {tool} {_compact(arguments)}"
        case ApprovalDecision(call_id=call, decision=decision, message=message):
            return f"approval_decision {call} {decision}" + (
                f" {_quoted(message)}" if message else ""
            )
        case ApprovalModeChanged(mode=mode):
            return f"approval_mode {mode}"
        case UserMessageQueued(text=text):
            return f"user_message_queued {_quoted(text)}"
        case FilesRevertedEvent(turn_id=turn, paths=paths):
            return f"files_reverted {turn}: {', '.join(paths)}"
    raise AssertionError(f"not a numbered event: {event!r}")


def describe_command(command: Command) -> str:
    """An output row: its type, then what matters of it."""
    tag = COMMAND_TAGS[type(command)]
    match command:
        case EmitEvent(event=event):
            numbered = f" (event seq {event.seq})" if event.seq is not None else ""
            return f"emit {_emitted(event)}{numbered}"
        case RejectEvent(code=code, event_type=event_type, state=state):
            return f"{tag} {event_type} in {state}: {code}"
        case StartLlmRequest(request_id=request, messages=messages, tools=tools):
            return f"{tag} {request}: {len(messages)} messages, {len(tools)} tools"
        case AbortLlmRequest(request_id=request):
            return f"{tag} {request}"
        case StartToolTimer(call_id=call, seconds=seconds):
            return f"{tag} {call} {seconds:g} s"
        case ClearToolTimer(call_id=call):
            return f"{tag} {call}"
    raise AssertionError(f"not a command: {command!r}")
