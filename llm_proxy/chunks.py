"""OpenAI's Chat Completions wire format: streamed chunks, whole completions, SSE framing.

Used by backends that produce answers themselves (the demo model) and by test
fakes of an upstream, so both speak exactly what OpenAI's own API sends.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

DONE_FRAME = b"data: [DONE]\n\n"
SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"

# Zero-width split points between a run of whitespace and the next word.
_WORD_START = re.compile(r"(?<=\s)(?=\S)")


def sse_frame(event: dict[str, Any]) -> bytes:
    """One `data:` event of a stream."""
    return (
        b"data: " + json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"
    )


def split_words(text: str) -> list[str]:
    """`text` cut before each word, so that the pieces join back to exactly `text`."""
    return [piece for piece in _WORD_START.split(text) if piece]


def split_evenly(text: str, pieces: int) -> list[str]:
    """`text` cut into at most `pieces` consecutive parts of about equal length."""
    size = max(1, -(-len(text) // max(1, pieces)))
    return [text[start : start + size] for start in range(0, len(text), size)] or [""]


@dataclass(frozen=True)
class ChunkBuilder:
    """The chunks of one streamed completion, all sharing its id, creation time and model.

    With `include_usage` every chunk carries `"usage": null` and the stream should end
    with `usage(...)`, as OpenAI does for `stream_options.include_usage`.
    """

    completion_id: str
    created: int
    model: str
    include_usage: bool = False

    def delta(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        """A chunk of the one choice with this delta."""
        chunk: dict[str, Any] = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def role(self) -> dict[str, Any]:
        """The opening chunk: who speaks."""
        return self.delta({"role": "assistant", "content": ""})

    def text(self, piece: str) -> dict[str, Any]:
        """A piece of the answer's text."""
        return self.delta({"content": piece})

    def tool_call_start(self, index: int, call_id: str, name: str) -> dict[str, Any]:
        """The first delta of tool call `index`: its id and function name."""
        call = {
            "index": index,
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        return self.delta({"tool_calls": [call]})

    def tool_call_arguments(self, index: int, fragment: str) -> dict[str, Any]:
        """A further fragment of tool call `index`'s JSON arguments."""
        return self.delta({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})

    def tool_calls(self, calls: list[tuple[str, str, str]], pieces: int) -> list[dict[str, Any]]:
        """Chunks for (id, name, arguments) calls, each call's arguments cut into `pieces`."""
        chunks = []
        for index, (call_id, name, arguments) in enumerate(calls):
            chunks.append(self.tool_call_start(index, call_id, name))
            chunks.extend(
                self.tool_call_arguments(index, part) for part in split_evenly(arguments, pieces)
            )
        return chunks

    def finish(self, reason: str) -> dict[str, Any]:
        """The closing chunk: why the answer ended (`stop`, `tool_calls`, `length`)."""
        return self.delta({}, reason)

    def usage(self, usage: dict[str, Any]) -> dict[str, Any]:
        """The extra last chunk of `include_usage`: no choices, just the token counts."""
        return {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [],
            "usage": usage,
        }

    def completion(
        self, message: dict[str, Any], finish_reason: str, usage: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The same answer as one non-streamed `chat.completion` body."""
        return {
            "id": self.completion_id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
            ],
            "usage": usage,
        }


def usage_counts(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    """OpenAI's `usage` object."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion_as_chunks(completion: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    """A whole `chat.completion` body as the chunks of the same answer streamed: the role,
    the text, each tool call (id and name, then its arguments), the finish, then the usage."""
    builder = ChunkBuilder(
        str(completion.get("id") or "chatcmpl-relayed"),
        int(completion.get("created") or 0),
        str(completion.get("model") or ""),
        include_usage,
    )
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    chunks = [builder.role()]
    if message.get("content"):
        chunks.append(builder.text(message["content"]))
    calls = message.get("tool_calls") or []
    for index, call in enumerate(calls):
        function = call.get("function") or {}
        chunks.append(
            builder.tool_call_start(
                index, call.get("id") or f"call_{index}", function.get("name") or ""
            )
        )
        if function.get("arguments"):
            chunks.append(builder.tool_call_arguments(index, function["arguments"]))
    reason = choice.get("finish_reason") or ("tool_calls" if calls else "stop")
    chunks.append(builder.finish(reason))
    if include_usage and completion.get("usage"):
        chunks.append(builder.usage(completion["usage"]))
    return chunks
