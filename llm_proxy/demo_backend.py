"""The demo model as a backend: its replies streamed in OpenAI's format, word by word.

Usage numbers are estimates (about four characters a token, counted on the
messages' text) and say so with `"estimated": true`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

from llm_proxy.chunks import DONE_FRAME, ChunkBuilder, split_words, sse_frame, usage_counts
from llm_proxy.demo import (
    DEMO_MODEL,
    DemoReply,
    DemoText,
    completion_id,
    demo_reply,
    estimate_tokens,
    message_text,
    tool_names,
)

# Tool-call arguments are streamed in fragments of about this many characters,
# as real models do, so clients must put them back together.
ARGUMENT_FRAGMENT_CHARS = 40


class DemoBackend:
    """Answers every request with the offline demo model."""

    label = DEMO_MODEL

    def __init__(self, word_delay: float) -> None:
        self._word_delay = word_delay

    async def stream(self, request: dict[str, Any]) -> AsyncGenerator[bytes, None]:
        messages = request["messages"]
        reply = demo_reply(messages, _offered_tools(request))
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        chunks = _builder(messages, include_usage)
        yield sse_frame(chunks.role())
        if isinstance(reply, DemoText):
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
        reply = demo_reply(messages, _offered_tools(request))
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        if isinstance(reply, DemoText):
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
        return _builder(messages, False).completion(message, finish_reason, _usage(messages, reply))

    async def aclose(self) -> None:
        return None


def _builder(messages: Sequence[Mapping[str, Any]], include_usage: bool) -> ChunkBuilder:
    return ChunkBuilder(completion_id(messages), int(time.time()), DEMO_MODEL, include_usage)


def _offered_tools(request: Mapping[str, Any]) -> frozenset[str]:
    if request.get("tool_choice") == "none":
        return frozenset()
    return tool_names(request.get("tools"))


def _usage(messages: Sequence[Mapping[str, Any]], reply: DemoReply) -> dict[str, Any]:
    prompt = "".join(message_text(message) + _call_arguments(message) for message in messages)
    answer = reply.text if isinstance(reply, DemoText) else reply.arguments
    return {**usage_counts(estimate_tokens(prompt), estimate_tokens(answer)), "estimated": True}


def _call_arguments(message: Mapping[str, Any]) -> str:
    calls = message.get("tool_calls") or ()
    return "".join(str((call.get("function") or {}).get("arguments") or "") for call in calls)
