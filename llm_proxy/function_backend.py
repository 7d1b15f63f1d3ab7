"""A model that is a plain function of the conversation, as a backend (pydantic-ai's
`FunctionModel` style): the function decides, this module speaks OpenAI's format.

The function gets the request's messages and the tool names it may call and
returns one `TextReply` or `ToolCallReply`. The backend streams a text word by
word (with an optional delay, like a model generating it) and a tool call's
arguments in fragments, as real models do, so clients must put them back
together; usage numbers are estimates (about four characters a token) and say
so with `"estimated": true`. The same conversation always gets the same
completion id.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llm_proxy.chunks import DONE_FRAME, ChunkBuilder, split_words, sse_frame, usage_counts

# Tool-call arguments are streamed in fragments of about this many characters.
ARGUMENT_FRAGMENT_CHARS = 40


@dataclass(frozen=True)
class TextReply:
    """The model answers with text and ends the turn."""

    text: str


@dataclass(frozen=True)
class ToolCallReply:
    """The model calls one tool and waits for its result."""

    call_id: str
    name: str
    arguments: str


FunctionReply = TextReply | ToolCallReply
ModelFunction = Callable[[Sequence[Mapping[str, Any]], frozenset[str]], FunctionReply]
"""`(messages, offered tool names) -> reply`: the whole model."""


class FunctionBackend:
    """Answers every request with `function`, under the model name `model`."""

    def __init__(self, function: ModelFunction, model: str, word_delay: float = 0.0) -> None:
        self._function = function
        self._model = model
        self._word_delay = word_delay

    @property
    def label(self) -> str:
        return self._model

    async def stream(self, request: dict[str, Any]) -> AsyncGenerator[bytes, None]:
        messages = request["messages"]
        reply = self._function(messages, _offered_tools(request))
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        chunks = self._builder(messages, include_usage)
        yield sse_frame(chunks.role())
        if isinstance(reply, TextReply):
            for word in split_words(reply.text):
                if self._word_delay:
                    await asyncio.sleep(self._word_delay)
                yield sse_frame(chunks.text(word))
            yield sse_frame(chunks.finish("stop"))
        else:
            pieces = -(-len(reply.arguments) // ARGUMENT_FRAGMENT_CHARS)
            for chunk in chunks.tool_calls([(reply.call_id, reply.name, reply.arguments)], pieces):
                yield sse_frame(chunk)
            yield sse_frame(chunks.finish("tool_calls"))
        if include_usage:
            yield sse_frame(chunks.usage(_usage(messages, reply)))
        yield DONE_FRAME

    async def complete(self, request: dict[str, Any]) -> dict[str, Any]:
        messages = request["messages"]
        reply = self._function(messages, _offered_tools(request))
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        if isinstance(reply, TextReply):
            message["content"] = reply.text
            finish_reason = "stop"
        else:
            message["tool_calls"] = [
                {
                    "id": reply.call_id,
                    "type": "function",
                    "function": {"name": reply.name, "arguments": reply.arguments},
                }
            ]
            finish_reason = "tool_calls"
        builder = self._builder(messages, False)
        return builder.completion(message, finish_reason, _usage(messages, reply))

    async def aclose(self) -> None:
        return None

    def _builder(self, messages: Sequence[Mapping[str, Any]], include_usage: bool) -> ChunkBuilder:
        completion_id = f"chatcmpl-{self._model}-{conversation_digest(messages)[:24]}"
        return ChunkBuilder(completion_id, int(time.time()), self._model, include_usage)


def message_text(message: Mapping[str, Any]) -> str:
    """A message's content as text, whether a string or a list of content parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def tool_names(tools: Any) -> frozenset[str]:
    """The function names offered by a request's `tools` list."""
    if not isinstance(tools, list):
        return frozenset()
    names = set()
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names.add(function["name"])
    return frozenset(names)


def conversation_digest(messages: Sequence[Mapping[str, Any]]) -> str:
    """A hex digest of the conversation: the same messages always give the same one."""
    encoded = json.dumps(list(messages), sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()


def estimate_tokens(text: str) -> int:
    """A rough token count (about four characters a token); an estimate, not a tokenizer."""
    return (len(text) + 3) // 4


def _offered_tools(request: Mapping[str, Any]) -> frozenset[str]:
    if request.get("tool_choice") == "none":
        return frozenset()
    return tool_names(request.get("tools"))


def _usage(messages: Sequence[Mapping[str, Any]], reply: FunctionReply) -> dict[str, Any]:
    prompt = "".join(message_text(message) + _call_arguments(message) for message in messages)
    answer = reply.text if isinstance(reply, TextReply) else reply.arguments
    return {**usage_counts(estimate_tokens(prompt), estimate_tokens(answer)), "estimated": True}


def _call_arguments(message: Mapping[str, Any]) -> str:
    calls = message.get("tool_calls") or ()
    return "".join(str((call.get("function") or {}).get("arguments") or "") for call in calls)
