"""`ChatStreamDecoder` turns the bytes of an OpenAI SSE stream into session events, however
the network cuts them (its failures are in `test_llm_failures.py`)."""

from __future__ import annotations

import json
from typing import Any

from llm_proxy.chunks import ChunkBuilder, sse_frame
from orchestrator.events import LlmStreamEnded, LlmTextDelta, LlmToolCallsCompleted, ModelToolCall
from orchestrator.stream import ChatStreamDecoder

CHUNKS = ChunkBuilder("chatcmpl-1", 0, "m", True)
DONE = b"data: [DONE]\n\n"


def _text(text: str) -> bytes:
    return sse_frame(CHUNKS.text(text))


def _stream(*frames: bytes) -> bytes:
    return b"".join(frames)


def test_decoder_merges_the_text_of_one_read_into_one_delta() -> None:
    decoder = ChatStreamDecoder("t1.1")
    events = decoder.feed(_stream(sse_frame(CHUNKS.role()), _text("Hel"), _text("lo")))
    assert events == [LlmTextDelta("t1.1", "Hello")]
    assert not decoder.done


def test_decoder_waits_for_the_end_of_a_line_cut_anywhere() -> None:
    body = _stream(_text("Hello"), _text(" world"), sse_frame(CHUNKS.finish("stop")), DONE)
    decoder = ChatStreamDecoder("t1.1")
    events = [event for byte in range(len(body)) for event in decoder.feed(body[byte : byte + 1])]
    assert events == [
        LlmTextDelta("t1.1", "Hello"),
        LlmTextDelta("t1.1", " world"),
        LlmStreamEnded("t1.1", "stop", 0, 0),
    ]
    assert decoder.done and decoder.finish() == []


def test_decoder_puts_tool_calls_together_by_index_and_delivers_them_at_the_end() -> None:
    calls = [("call_a", "read_file", '{"path": "a.py"}'), ("call_b", "git_diff", "{}")]
    frames = [sse_frame(chunk) for chunk in CHUNKS.tool_calls(calls, 4)]
    usage: dict[str, Any] = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    body = _stream(
        *frames, sse_frame(CHUNKS.finish("tool_calls")), sse_frame(CHUNKS.usage(usage)), DONE
    )
    decoder = ChatStreamDecoder("t1.2")
    assert decoder.feed(body[:100]) == []
    assert decoder.feed(body[100:]) == [
        LlmToolCallsCompleted(
            "t1.2",
            (
                ModelToolCall("call_a", "read_file", '{"path": "a.py"}'),
                ModelToolCall("call_b", "git_diff", "{}"),
            ),
        ),
        LlmStreamEnded("t1.2", "tool_calls", 12, 5),
    ]


def test_decoder_ignores_comments_other_fields_and_anything_after_done() -> None:
    body = _stream(b": keep-alive\n\n", b"event: x\n", _text("ok"), DONE, _text("late"))
    events = ChatStreamDecoder("t1.1").feed(body)
    assert events == [LlmTextDelta("t1.1", "ok"), LlmStreamEnded("t1.1", "stop", 0, 0)]


def test_decoder_says_tool_calls_when_the_stream_names_no_finish_reason() -> None:
    chunk = {
        "choices": [
            {"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c", "function": {}}]}}
        ]
    }
    body = _stream(b"data: " + json.dumps(chunk).encode() + b"\n\n", DONE)
    *_, end = ChatStreamDecoder("t1.1").feed(body)
    assert end == LlmStreamEnded("t1.1", "tool_calls", 0, 0)
