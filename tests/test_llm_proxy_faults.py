"""Upstream faults: each one gives the caller a clear, timely answer, and the proxy keeps serving."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.support.fake_upstream import (
    DONE,
    Chunk,
    Cut,
    FakeUpstream,
    Raw,
    RecordedRequest,
    Sleep,
    Step,
    completion_reply,
    error_reply,
    text_stream,
)
from tests.support.procs import free_port
from tests.support.proxy_process import RunningProxy, running_proxy

CONNECT_TIMEOUT = 1.0
IDLE_TIMEOUT = 0.5
USER = [{"role": "user", "content": "Say hello"}]
HEALTHY = "Still here and serving"
# Longer than any timeout of the proxy: a caller only gets an answer this soon if the proxy acts.
NEVER = 30.0


@pytest.fixture(scope="module")
def proxy(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningProxy]:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    routes = f"""
[models.fake]
upstreams = [{{ base_url = "{upstream.base_url}", model = "primary" }}]

[models.healthy]
upstreams = [{{ base_url = "{upstream.base_url}", model = "healthy" }}]

[models.refused]
upstreams = [{{ base_url = "{dead}" }}]

[models.chain]
upstreams = [
  {{ base_url = "{upstream.base_url}", model = "first-choice" }},
  {{ base_url = "{upstream.base_url}", model = "second-choice" }},
]

[models.offline-fallback]
upstreams = [{{ base_url = "{dead}" }}, {{ backend = "demo" }}]
"""
    flags = [
        "--max-retries",
        "1",
        "--connect-timeout",
        str(CONNECT_TIMEOUT),
        "--idle-timeout",
        str(IDLE_TIMEOUT),
    ]
    with running_proxy(tmp_path_factory.mktemp("proxy"), *flags, routes=routes) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_upstream(upstream: FakeUpstream) -> None:
    upstream.reset()


def by_model(scripts: dict[str, Any]) -> Any:
    """A script that plays scripts[model]; a model's entry may be a list of scripts, one per call."""
    calls: dict[str, int] = {}

    def script(request: dict[str, Any]) -> list[Step]:
        model = request["model"]
        if model == "healthy":
            return text_stream(HEALTHY) if request.get("stream") else [completion_reply(HEALTHY)]
        entry = scripts[model]
        if entry and isinstance(entry[0], list):
            index = calls.get(model, 0)
            calls[model] = index + 1
            return list(entry[min(index, len(entry) - 1)])
        return list(entry)

    return script


def requests_for(upstream: FakeUpstream, model: str) -> list[RecordedRequest]:
    return [request for request in upstream.requests if request.json["model"] == model]


def client(proxy: RunningProxy) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=proxy.base_url, api_key="unused", max_retries=0, timeout=60)


async def sse_events(proxy: RunningProxy, model: str) -> list[Any]:
    """Every `data:` payload of a streamed answer, as the wire carries it ("[DONE]" kept)."""
    events: list[Any] = []
    async with (
        client(proxy) as api,
        api.chat.completions.with_streaming_response.create(
            model=model, messages=USER, stream=True
        ) as response,
    ):
        async for line in response.iter_lines():
            if line.startswith("data: "):
                payload = line[len("data: ") :]
                events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


async def healthy_answer(proxy: RunningProxy, finished: list[str]) -> str:
    async with client(proxy) as api:
        completion = await api.chat.completions.create(model="healthy", messages=USER)
    finished.append("healthy")
    return completion.choices[0].message.content or ""


def text_of(events: list[Any]) -> str:
    return "".join(
        event["choices"][0]["delta"].get("content") or ""
        for event in events
        if isinstance(event, dict) and event.get("choices")
    )


PARTIAL = text_stream("Hel")[:2]  # the role chunk and one word, nothing more


@pytest.mark.parametrize(
    ("fault", "steps", "code"),
    [
        ("stall mid-stream", [*PARTIAL, Sleep(NEVER), DONE], "upstream_timeout"),
        ("cut mid-stream", [*PARTIAL, Cut()], "upstream_truncated"),
        (
            "chunk that is not JSON",
            [*PARTIAL, Raw(b"data: {not json\n\n"), DONE],
            "upstream_bad_response",
        ),
        ("end without [DONE]", PARTIAL, "upstream_truncated"),
    ],
)
async def test_proxy_ends_the_stream_with_an_error_event_when_the_upstream_breaks_mid_stream(
    proxy: RunningProxy, upstream: FakeUpstream, fault: str, steps: list[Step], code: str
) -> None:
    upstream.script = by_model({"primary": steps})
    finished: list[str] = []

    async def faulty() -> list[Any]:
        events = await sse_events(proxy, "fake")
        finished.append("faulty")
        return events

    events, healthy = await asyncio.gather(faulty(), healthy_answer(proxy, finished))

    assert text_of(events) == "Hel"
    assert events[-1]["error"]["code"] == code, fault
    assert set(events[-1]["error"]) == {"message", "type", "param", "code"}
    assert "[DONE]" not in events
    assert healthy == HEALTHY
    [request] = requests_for(upstream, "primary")
    if fault == "stall mid-stream":
        assert finished == ["healthy", "faulty"]
        assert not request.finished.is_set()


async def test_proxy_keeps_a_stream_open_while_the_upstream_sends_keep_alive_comments(
    proxy: RunningProxy, upstream: FakeUpstream
) -> None:
    thinking = [Raw(b": keep-alive\n\n"), Sleep(IDLE_TIMEOUT / 5)] * 10
    upstream.script = by_model({"primary": [*PARTIAL, *thinking, *text_stream("lo")[1:]]})

    events = await sse_events(proxy, "fake")

    assert text_of(events) == "Hello"
    assert events[-1] == "[DONE]"


async def test_official_client_raises_instead_of_returning_a_short_answer_when_the_stream_is_cut(
    proxy: RunningProxy, upstream: FakeUpstream
) -> None:
    upstream.script = by_model({"primary": [*PARTIAL, Cut()]})
    received = []

    async with client(proxy) as api:
        stream = await api.chat.completions.create(model="fake", messages=USER, stream=True)
        with pytest.raises(openai.APIError) as raised:
            async for chunk in stream:
                received.append(chunk.choices[0].delta.content or "")

    assert "".join(received) == "Hel"
    assert raised.value.code == "upstream_truncated"


async def test_proxy_answers_504_within_its_timeout_and_keeps_serving_when_the_upstream_hangs(
    proxy: RunningProxy, upstream: FakeUpstream
) -> None:
    upstream.script = by_model({"primary": [Sleep(NEVER), *text_stream("too late")]})
    finished: list[str] = []

    async def hanging() -> openai.APIStatusError:
        started = time.monotonic()
        with pytest.raises(openai.APIStatusError) as raised:
            await sse_events(proxy, "fake")
        assert time.monotonic() - started < NEVER
        finished.append("hanging")
        return raised.value

    error, healthy = await asyncio.gather(hanging(), healthy_answer(proxy, finished))

    assert (error.status_code, error.code) == (504, "upstream_timeout")
    assert healthy == HEALTHY
    assert finished == ["healthy", "hanging"]
    [request] = requests_for(upstream, "primary")
    assert await asyncio.to_thread(request.disconnected.wait, 5)


async def test_proxy_retries_once_and_passes_the_500_through_when_the_upstream_keeps_failing(
    proxy: RunningProxy, upstream: FakeUpstream
) -> None:
    upstream.script = by_model({"primary": [error_reply(500, "boom", kind="server_error")]})

    with pytest.raises(openai.InternalServerError) as raised:
        await sse_events(proxy, "fake")

    assert raised.value.status_code == 500
    assert raised.value.body == {
        "message": "boom",
        "type": "server_error",
        "param": None,
        "code": None,
    }
    assert len(upstream.requests) == 2


async def test_proxy_retries_and_answers_when_the_upstream_recovers_from_a_500(
    proxy: RunningProxy, upstream: FakeUpstream
) -> None:
    upstream.script = by_model(
        {"primary": [[error_reply(500, "boom", kind="server_error")], text_stream("Recovered")]}
    )

    events = await sse_events(proxy, "fake")

    assert text_of(events) == "Recovered"
    assert events[-1] == "[DONE]"
    assert len(upstream.requests) == 2


async def test_proxy_waits_as_long_as_retry_after_says_when_the_upstream_answers_429(
    proxy: RunningProxy, upstream: FakeUpstream
) -> None:
    limited = error_reply(
        429, "slow down", code="rate_limit_exceeded", headers={"retry-after": "1"}
    )
    upstream.script = by_model({"primary": [[limited], text_stream("Thanks for waiting")]})

    events = await sse_events(proxy, "fake")

    assert text_of(events) == "Thanks for waiting"
    first, second = upstream.requests
    assert second.received_at - first.received_at >= 1.0


async def test_proxy_answers_502_when_the_upstream_refuses_connections(proxy: RunningProxy) -> None:
    with pytest.raises(openai.APIStatusError) as raised:
        await sse_events(proxy, "refused")

    assert (raised.value.status_code, raised.value.code) == (502, "upstream_unavailable")


async def test_proxy_answers_502_without_retrying_when_the_first_chunk_is_not_json(
    proxy: RunningProxy, upstream: FakeUpstream
) -> None:
    upstream.script = by_model({"primary": [Raw(b"data: <html>oops</html>\n\n"), DONE]})

    with pytest.raises(openai.APIStatusError) as raised:
        await sse_events(proxy, "fake")

    assert (raised.value.status_code, raised.value.code) == (502, "upstream_bad_response")
    assert len(upstream.requests) == 1


async def test_proxy_cancels_the_upstream_request_when_the_caller_disconnects(
    proxy: RunningProxy, upstream: FakeUpstream
) -> None:
    upstream.script = by_model({"primary": [*PARTIAL, Sleep(NEVER), DONE]})

    async with client(proxy) as api:
        stream = await api.chat.completions.create(model="fake", messages=USER, stream=True)
        async for chunk in stream:
            if chunk.choices[0].delta.content:
                break
        await stream.close()

    request = upstream.requests[0]
    assert await asyncio.to_thread(request.disconnected.wait, 5)
    assert not request.finished.is_set()


async def test_proxy_falls_back_to_the_next_upstream_when_the_first_fails_before_streaming(
    proxy: RunningProxy, upstream: FakeUpstream
) -> None:
    upstream.script = by_model(
        {
            "first-choice": [error_reply(503, "unavailable", kind="server_error")],
            "second-choice": text_stream("From the fallback"),
        }
    )

    events = await sse_events(proxy, "chain")

    assert text_of(events) == "From the fallback"
    assert [request.json["model"] for request in upstream.requests] == [
        "first-choice",
        "first-choice",
        "second-choice",
    ]


async def test_proxy_falls_back_to_the_demo_model_when_the_only_upstream_is_down(
    proxy: RunningProxy,
) -> None:
    events = await sse_events(proxy, "offline-fallback")

    assert "offline demo model" in text_of(events)
    assert events[-1] == "[DONE]"


async def test_proxy_never_falls_back_once_the_stream_has_started(
    proxy: RunningProxy, upstream: FakeUpstream
) -> None:
    upstream.script = by_model(
        {"first-choice": [*PARTIAL, Cut()], "second-choice": text_stream("Must not be used")}
    )

    events = await sse_events(proxy, "chain")

    assert events[-1]["error"]["code"] == "upstream_truncated"
    assert [request.json["model"] for request in upstream.requests] == ["first-choice"]


async def test_proxy_passes_an_upstream_400_straight_back_without_fallback(
    proxy: RunningProxy, upstream: FakeUpstream
) -> None:
    upstream.script = by_model(
        {
            "first-choice": [error_reply(400, "max_tokens is too large", code="invalid_value")],
            "second-choice": text_stream("Must not be used"),
        }
    )

    with pytest.raises(openai.BadRequestError) as raised:
        await sse_events(proxy, "chain")

    assert raised.value.code == "invalid_value"
    assert [request.json["model"] for request in upstream.requests] == ["first-choice"]


def test_fake_upstream_scripts_chunks_as_real_sse(upstream: FakeUpstream) -> None:
    upstream.script = lambda request: [Chunk({"hello": "world"}), DONE]
    api = openai.OpenAI(base_url=upstream.base_url, api_key="k", max_retries=0)

    with api.chat.completions.with_streaming_response.create(
        model="m", messages=USER, stream=True
    ) as response:
        lines = [line for line in response.iter_lines() if line]

    assert lines == ['data: {"hello":"world"}', "data: [DONE]"]
