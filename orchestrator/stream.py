"""Turns the bytes of an OpenAI chat-completions SSE stream into session events (sans-I/O).

Feed it network reads with `feed(data)`; it returns the events those bytes
complete. Text of several chunks that arrive in one read is merged into one
`LlmTextDelta`: that is the only coalescing, and it happens only when the
reader is behind the stream. Tool-call deltas are accumulated by `index`
into complete calls, delivered with the end of the stream.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from orchestrator.events import (
    Event,
    LlmFailed,
    LlmStreamEnded,
    LlmTextDelta,
    LlmToolCallsCompleted,
    ModelToolCall,
)
from wire import ErrorCode, LlmFailureKind

UPSTREAM_CODES: dict[str, ErrorCode] = {
    **{code.value: code for code in ErrorCode if code.value.startswith("llm_")},
    "upstream_timeout": ErrorCode.LLM_TIMEOUT,
    "timeout": ErrorCode.LLM_TIMEOUT,
    "rate_limit_exceeded": ErrorCode.LLM_RATE_LIMITED,
    "rate_limit_error": ErrorCode.LLM_RATE_LIMITED,
    "upstream_truncated": ErrorCode.LLM_TRUNCATED,
    "upstream_bad_response": ErrorCode.LLM_BAD_RESPONSE,
    "context_length_exceeded": ErrorCode.LLM_CONTEXT_EXCEEDED,
}
"""The code of an error event inside a stream (its `code`, else its `type`) → what the IDE
is told: our own `llm_*` codes (a replay sends them back), the llm-proxy's `upstream_*` codes
and OpenAI's. Any other code is `llm_upstream_error`."""


@dataclass(slots=True)
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class ChatStreamDecoder:
    """Decodes one streamed response; `finish()` says how it ended."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self._buffer = b""
        self._calls: dict[int, _PartialCall] = {}
        self._finish_reason: str | None = None
        self._prompt_tokens = 0
        self._completion_tokens = 0
        self.done = False

    def feed(self, data: bytes) -> list[Event]:
        """Decode what `data` completes; return the events for the core, in order (none once
        the stream is done)."""
        if self.done:
            return []
        buffer = self._buffer + data
        end = buffer.rfind(b"\n")
        if end < 0:
            self._buffer = buffer
            return []
        self._buffer = buffer[end + 1 :]
        events: list[Event] = []
        text: list[str] = []
        for line in buffer[:end].split(b"\n"):
            if not line.startswith(b"data:") or self.done:
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                self.done = True
                continue
            failure = self._chunk(payload, text)
            if failure is not None:
                self.done = True
                if text:
                    events.append(LlmTextDelta(self.request_id, "".join(text)))
                events.append(failure)
                return events
        if text:
            events.append(LlmTextDelta(self.request_id, "".join(text)))
        if self.done:
            events.extend(self._ending())
        return events

    def finish(self) -> list[Event]:
        """The connection ended: a stream without `[DONE]` is a failure, never a short answer."""
        if self.done:
            return []
        self.done = True
        return [
            LlmFailed(
                self.request_id,
                ErrorCode.LLM_TRUNCATED,
                "the model's stream ended before it was complete ([DONE] never came)",
                LlmFailureKind.NO_DONE,
            )
        ]

    def _chunk(self, payload: bytes, text: list[str]) -> LlmFailed | None:
        try:
            chunk = json.loads(payload)
        except (ValueError, RecursionError):
            return LlmFailed(
                self.request_id,
                ErrorCode.LLM_BAD_RESPONSE,
                "the model sent a chunk that is not JSON",
                LlmFailureKind.NOT_JSON,
            )
        if not isinstance(chunk, dict):
            return LlmFailed(
                self.request_id,
                ErrorCode.LLM_BAD_RESPONSE,
                "the model sent a chunk that is not an object",
                LlmFailureKind.NOT_AN_OBJECT,
            )
        error = chunk.get("error")
        if error is not None:
            return _failure_from_error(self.request_id, error)
        try:
            self._read_chunk(chunk, text)
        except (AttributeError, TypeError, ValueError):
            return LlmFailed(
                self.request_id,
                ErrorCode.LLM_BAD_RESPONSE,
                "the model sent a chunk that does not have a chat completion chunk's shape",
                LlmFailureKind.BAD_CHUNK,
            )
        return None

    def _read_chunk(self, chunk: dict[str, Any], text: list[str]) -> None:
        """Take a chunk's text, tool-call pieces, finish reason and usage; a field of the wrong
        type raises AttributeError, TypeError or ValueError."""
        usage = chunk.get("usage")
        if usage:
            self._prompt_tokens = int(usage.get("prompt_tokens") or 0)
            self._completion_tokens = int(usage.get("completion_tokens") or 0)
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if content:
                if not isinstance(content, str):
                    raise TypeError("content is not a string")
                text.append(content)
            for call_delta in delta.get("tool_calls") or ():
                self._add_call_delta(call_delta)
            reason = choice.get("finish_reason")
            if reason:
                if not isinstance(reason, str):
                    raise TypeError("finish_reason is not a string")
                self._finish_reason = reason

    def _add_call_delta(self, call_delta: dict[str, Any]) -> None:
        index = int(call_delta.get("index") or 0)
        call = self._calls.setdefault(index, _PartialCall())
        if call_delta.get("id"):
            call.id = call_delta["id"]
        function = call_delta.get("function") or {}
        pieces = (call_delta.get("id"), function.get("name"), function.get("arguments"))
        if any(piece and not isinstance(piece, str) for piece in pieces):
            raise TypeError("a tool call's id, name and arguments are strings")
        if function.get("name"):
            call.name += function["name"]
        if function.get("arguments"):
            call.arguments.append(function["arguments"])

    def _ending(self) -> list[Event]:
        events: list[Event] = []
        if self._calls:
            calls = tuple(
                ModelToolCall(call.id, call.name, "".join(call.arguments))
                for _, call in sorted(self._calls.items())
            )
            events.append(LlmToolCallsCompleted(self.request_id, calls))
        reason = self._finish_reason or ("tool_calls" if self._calls else "stop")
        events.append(
            LlmStreamEnded(self.request_id, reason, self._prompt_tokens, self._completion_tokens)
        )
        return events


def _failure_from_error(request_id: str, error: Any) -> LlmFailed:
    if isinstance(error, dict):
        message = str(error.get("message") or error)
        code = str(error.get("code") or error.get("type") or "")
    else:
        message, code = str(error), ""
    return LlmFailed(
        request_id,
        UPSTREAM_CODES.get(code, ErrorCode.LLM_UPSTREAM_ERROR),
        f"the model failed mid-stream: {message}",
        LlmFailureKind.STREAM_ERROR,
        detail=message,
    )
