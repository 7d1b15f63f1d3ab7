"""A recorded session's model responses as a backend: each request answered as it was recorded.

A request is looked up among the session's recorded requests (see
`replay_match`); one that equals none of them is refused with 409
`replay_mismatch`, naming where it differs from the nearest. Otherwise the
recorded stream events are sent back in OpenAI's SSE format, one chunk per
recorded event, so that the orchestrator's decoder feeds its session exactly the
recorded events: each `llm_delta` text as one content chunk (a delta the runtime
had merged from several chunks stays merged), each recorded tool call with its
id, name and arguments, the finish reason, the usage when asked for, `[DONE]`.

A recorded failure is sent back in the form its `kind` names (see
`wire.LlmFailureKind`), so the orchestrator's client turns it into the recorded
code and message again: an HTTP error status before the stream with the
endpoint's own words (`status`, `detail`), an in-stream error event, a stream
without `[DONE]`, or a chunk that is not JSON or not an object. Any other
failure (the endpoint unreachable, a timeout, a restart) cannot happen again
over a working connection; it is sent as an in-stream error with the recorded
code and message, which the orchestrator then reports with its mid-stream
wording. A request whose recording has no end (cancelled mid-stream)
is streamed up to where the recording stops, then kept open until the caller
goes away.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from typing import Any

from llm_proxy.chunks import DONE_FRAME, ChunkBuilder, sse_frame, usage_counts
from llm_proxy.errors import ReplayedFailure, ReplayMismatch
from llm_proxy.replay_match import RecordedRequests
from llm_proxy.transcript_reader import RecordedExchange, RecordedSession
from wire import LlmFailureKind

logger = logging.getLogger(__name__)

_BROKEN_FRAMES: dict[str, list[bytes]] = {
    LlmFailureKind.NO_DONE: [],
    LlmFailureKind.NOT_JSON: [b"data: {\n\n"],
    LlmFailureKind.NOT_AN_OBJECT: [b"data: []\n\n"],
}
"""What ends the stream for a failure of these kinds: nothing before the clean end, or the
broken chunk."""


class ReplayBackend:
    """Answers the requests one recorded session made, as recorded."""

    def __init__(self, session: RecordedSession) -> None:
        self._requests = RecordedRequests(session)
        self._session_id = session.session_id

    @property
    def label(self) -> str:
        return f"replay of {self._session_id}"

    async def stream(self, request: dict[str, Any]) -> AsyncGenerator[bytes, None]:
        exchange = self._recorded(request)
        failure = _ending_failure(exchange)
        if failure is not None and (status_failure := _status_failure(failure)) is not None:
            raise status_failure
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        chunks = _builder(exchange, request, include_usage)
        yield sse_frame(chunks.role())
        for event in exchange.events:
            kind = event["type"]
            if kind == "llm_delta":
                yield sse_frame(chunks.text(event["text"]))
            elif kind == "llm_tool_calls":
                for index, call in enumerate(event["calls"]):
                    yield sse_frame(chunks.tool_call_start(index, call["id"], call["name"]))
                    if call["arguments"]:
                        yield sse_frame(chunks.tool_call_arguments(index, call["arguments"]))
            elif kind == "llm_end":
                yield sse_frame(chunks.finish(event["finish_reason"]))
                if include_usage:
                    yield sse_frame(chunks.usage(_usage(event)))
                yield DONE_FRAME
            else:
                for frame in _failure_frames(event):
                    yield frame
        if not exchange.ended:
            await asyncio.Event().wait()

    async def complete(self, request: dict[str, Any]) -> dict[str, Any]:
        exchange = self._recorded(request)
        failure = _ending_failure(exchange)
        if failure is not None:
            raise _status_failure(failure) or ReplayedFailure(
                502, failure["code"], failure["message"]
            )
        if not exchange.ended:
            raise ReplayedFailure(
                502, "replay_incomplete", f"the recording of {exchange.request_id} has no end"
            )
        end = exchange.events[-1]
        text = "".join(event["text"] for event in exchange.events if event["type"] == "llm_delta")
        message: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None}
        calls = [
            call
            for event in exchange.events
            if event["type"] == "llm_tool_calls"
            for call in event["calls"]
        ]
        if calls:
            message["tool_calls"] = [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                }
                for call in calls
            ]
        builder = _builder(exchange, request, False)
        return builder.completion(message, end["finish_reason"], _usage(end))

    async def aclose(self) -> None:
        return None

    def _recorded(self, request: dict[str, Any]) -> RecordedExchange:
        exchange = self._requests.find(request)
        if exchange is not None:
            return exchange
        miss = self._requests.explain_miss(request)
        if miss is None:
            raise ReplayMismatch(f"session {self._session_id} recorded no model request")
        nearest, difference = miss
        logger.warning(
            "request differs from the recording",
            extra={
                "session_id": self._session_id,
                "nearest_request_id": nearest.request_id,
                "path": difference.path,
            },
        )
        raise ReplayMismatch(
            f"the request differs from every recorded request of session {self._session_id}; "
            f"the nearest is {nearest.request_id}, and {difference}",
            param=difference.path,
        )


def _builder(exchange: RecordedExchange, request: dict[str, Any], usage: bool) -> ChunkBuilder:
    return ChunkBuilder(
        f"chatcmpl-replay-{exchange.request_id}", int(time.time()), str(request["model"]), usage
    )


def _usage(end: dict[str, Any]) -> dict[str, Any]:
    return usage_counts(end["prompt_tokens"], end["completion_tokens"])


def _ending_failure(exchange: RecordedExchange) -> dict[str, Any] | None:
    if exchange.ended and exchange.events[-1]["type"] == "llm_failed":
        return exchange.events[-1]
    return None


def _status_failure(failure: dict[str, Any]) -> ReplayedFailure | None:
    """The HTTP error the recorded failure came from, when it was an endpoint's status."""
    if failure.get("kind") != LlmFailureKind.STATUS or failure.get("status") is None:
        return None
    return ReplayedFailure(int(failure["status"]), failure["code"], failure["detail"])


def _failure_frames(failure: dict[str, Any]) -> list[bytes]:
    """The end of a stream that failed after it started, as recorded."""
    kind = failure.get("kind")
    broken = _BROKEN_FRAMES.get(kind) if isinstance(kind, str) else None
    if broken is not None:
        return broken
    stream_error = kind == LlmFailureKind.STREAM_ERROR
    error = {
        "message": failure["detail"] if stream_error else failure["message"],
        "type": "upstream_error",
        "param": None,
        "code": failure["code"],
    }
    return [sse_frame({"error": error})]
