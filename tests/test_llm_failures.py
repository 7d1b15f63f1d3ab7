"""Every way a model request fails maps, by an explicit table, to one code the IDE can act on.

Three tables, each tested row by row: the code of an error event inside a stream
(`orchestrator.stream.UPSTREAM_CODES`), an endpoint's HTTP error status
(`orchestrator.llm_client.STATUS_CODES`), and an exception raised while the body streams
(`orchestrator.llm_client.STREAM_EXCEPTIONS`). The statuses and exceptions come from a real
HTTP server over a real socket; every failure carries its kind, status and the endpoint's
own words as data.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from orchestrator.commands import StartLlmRequest
from orchestrator.events import Event, LlmFailed, LlmTextDelta
from orchestrator.llm_client import STATUS_CODES, STREAM_EXCEPTIONS, LlmClient, LlmSettings
from orchestrator.stream import UPSTREAM_CODES, ChatStreamDecoder
from tests.support.fake_upstream import (
    FAKE_MODEL,
    Cut,
    FakeUpstream,
    Sleep,
    Step,
    error_reply,
    text_stream,
)
from tests.support.procs import free_port
from wire import ErrorCode, LlmFailureKind

REQUEST = StartLlmRequest("t1.1", ({"role": "user", "content": "hi"},), ())

# (code or type of the in-stream error, code the IDE is told): every row of the table,
# written out, and the codes a substring match used to get wrong.
IN_STREAM_CODES = [
    *((code.value, code) for code in ErrorCode if code.value.startswith("llm_")),
    ("upstream_timeout", ErrorCode.LLM_TIMEOUT),
    ("timeout", ErrorCode.LLM_TIMEOUT),
    ("rate_limit_exceeded", ErrorCode.LLM_RATE_LIMITED),
    ("rate_limit_error", ErrorCode.LLM_RATE_LIMITED),
    ("upstream_truncated", ErrorCode.LLM_TRUNCATED),
    ("upstream_bad_response", ErrorCode.LLM_BAD_RESPONSE),
    ("context_length_exceeded", ErrorCode.LLM_CONTEXT_EXCEEDED),
    ("content_moderated", ErrorCode.LLM_UPSTREAM_ERROR),
    ("generate_failed", ErrorCode.LLM_UPSTREAM_ERROR),
    ("invalid_json", ErrorCode.LLM_UPSTREAM_ERROR),
    ("llm_not_a_code", ErrorCode.LLM_UPSTREAM_ERROR),
    ("server_error", ErrorCode.LLM_UPSTREAM_ERROR),
    ("", ErrorCode.LLM_UPSTREAM_ERROR),
]


def _error_frame(error: object) -> bytes:
    return b"data: " + json.dumps({"error": error}).encode() + b"\n\n"


@pytest.mark.parametrize(("upstream", "expected"), IN_STREAM_CODES)
def test_decoder_maps_an_in_stream_error_code_by_its_table_row(
    upstream: str, expected: ErrorCode
) -> None:
    decoder = ChatStreamDecoder("t1.1")
    events = decoder.feed(_error_frame({"message": "it broke", "code": upstream or None}))
    assert events == [
        LlmFailed(
            "t1.1",
            expected,
            "the model failed mid-stream: it broke",
            LlmFailureKind.STREAM_ERROR,
            detail="it broke",
        )
    ]


def test_decoder_table_rows_are_all_tested() -> None:
    assert set(UPSTREAM_CODES) <= {upstream for upstream, _ in IN_STREAM_CODES}


def test_decoder_maps_an_in_stream_error_by_its_type_when_it_has_no_code() -> None:
    decoder = ChatStreamDecoder("t1.1")
    (failure,) = decoder.feed(_error_frame({"message": "slow", "type": "rate_limit_error"}))
    assert isinstance(failure, LlmFailed)
    assert failure.code == ErrorCode.LLM_RATE_LIMITED


@pytest.mark.parametrize(
    ("data", "code", "kind"),
    [
        (b"data: {\n\n", ErrorCode.LLM_BAD_RESPONSE, LlmFailureKind.NOT_JSON),
        (b"data: []\n\n", ErrorCode.LLM_BAD_RESPONSE, LlmFailureKind.NOT_AN_OBJECT),
        (b'data: {"choices": 1}\n\n', ErrorCode.LLM_BAD_RESPONSE, LlmFailureKind.BAD_CHUNK),
    ],
)
def test_decoder_names_the_kind_of_a_broken_chunk(data: bytes, code: str, kind: str) -> None:
    (failure,) = ChatStreamDecoder("t1.1").feed(data)
    assert isinstance(failure, LlmFailed)
    assert (failure.code, failure.kind, failure.status) == (code, kind, None)


def test_decoder_names_a_stream_without_done_when_the_connection_ends() -> None:
    decoder = ChatStreamDecoder("t1.1")
    assert decoder.feed(b'data: {"choices": []}\n\n') == []
    (failure,) = decoder.finish()
    assert isinstance(failure, LlmFailed)
    assert (failure.code, failure.kind) == (ErrorCode.LLM_TRUNCATED, LlmFailureKind.NO_DONE)


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


async def _stream(base_url: str, read_timeout_s: float = 10.0) -> list[Event]:
    client = LlmClient(
        LlmSettings(base_url=base_url, model=FAKE_MODEL, read_timeout_s=read_timeout_s)
    )
    fed: list[Event] = []
    try:
        await client.stream(REQUEST, fed.append)
    finally:
        await client.close()
    return fed


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, ErrorCode.LLM_AUTH),
        (403, ErrorCode.LLM_AUTH),
        (429, ErrorCode.LLM_RATE_LIMITED),
        (504, ErrorCode.LLM_TIMEOUT),
        (500, ErrorCode.LLM_UPSTREAM_ERROR),
        (503, ErrorCode.LLM_UPSTREAM_ERROR),
        (400, ErrorCode.LLM_BAD_REQUEST),
        (404, ErrorCode.LLM_BAD_REQUEST),
        (422, ErrorCode.LLM_BAD_REQUEST),
    ],
)
async def test_client_maps_an_endpoint_status_by_its_table_row(
    upstream: FakeUpstream, status: int, expected: ErrorCode
) -> None:
    upstream.script = lambda request: [error_reply(status, "no, because")]
    assert await _stream(upstream.base_url) == [
        LlmFailed(
            "t1.1",
            expected,
            f"LLM endpoint answered {status}: no, because",
            LlmFailureKind.STATUS,
            status,
            "no, because",
        )
    ]


def test_client_status_table_rows_are_all_tested() -> None:
    assert set(STATUS_CODES) == {401, 403, 429, 504}


async def test_client_names_a_context_overflow_when_a_400_says_so(
    upstream: FakeUpstream,
) -> None:
    upstream.script = lambda request: [error_reply(400, "too long", code="context_length_exceeded")]
    (failure,) = await _stream(upstream.base_url)
    assert isinstance(failure, LlmFailed)
    assert (failure.code, failure.kind, failure.status, failure.detail) == (
        ErrorCode.LLM_CONTEXT_EXCEEDED,
        LlmFailureKind.STATUS,
        400,
        "too long",
    )


def _started(tail: list[Step]) -> list[Step]:
    return [*text_stream("hello there")[:2], *tail]


@pytest.mark.parametrize(
    ("script", "code", "message"),
    [
        (_started([Sleep(5)]), ErrorCode.LLM_TIMEOUT, "the model's stream stalled"),
        (_started([Cut()]), ErrorCode.LLM_TRUNCATED, "the model's stream broke: "),
        ([Sleep(5)], ErrorCode.LLM_TIMEOUT, "the LLM endpoint did not answer in time"),
    ],
    ids=["stalled mid-stream", "cut mid-stream", "silent before answering"],
)
async def test_client_maps_a_transport_failure_by_its_exception_type(
    upstream: FakeUpstream, script: list[Step], code: ErrorCode, message: str
) -> None:
    upstream.script = lambda request: script
    *text, failure = await _stream(upstream.base_url, read_timeout_s=0.3)
    assert text == ([LlmTextDelta("t1.1", "hello ")] if len(script) > 1 else [])
    assert isinstance(failure, LlmFailed)
    assert (failure.code, failure.kind, failure.status) == (code, LlmFailureKind.TRANSPORT, None)
    assert failure.message.startswith(message)


def test_client_exception_table_rows_are_all_tested() -> None:
    assert [kind.__name__ for kind, _, _ in STREAM_EXCEPTIONS] == ["TimeoutException"]


async def test_client_names_an_unreachable_endpoint() -> None:
    (failure,) = await _stream(f"http://127.0.0.1:{free_port()}/v1")
    assert isinstance(failure, LlmFailed)
    assert (failure.code, failure.kind) == (ErrorCode.LLM_UNAVAILABLE, LlmFailureKind.TRANSPORT)
    assert failure.message.startswith("cannot reach the LLM endpoint: ")
