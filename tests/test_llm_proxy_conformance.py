"""The official `openai` client, sync and async, cannot tell the proxy from an OpenAI server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tests.support.fake_credentials import UPSTREAM_API_KEY
from tests.support.fake_upstream import (
    FakeUpstream,
    Sleep,
    completion_reply,
    error_reply,
    text_stream,
    tool_call_stream,
)
from tests.support.procs import free_port
from tests.support.proxy_process import RunningProxy, running_proxy

PROXY_KEY = "proxy-key-for-tests"
UPSTREAM_KEY = UPSTREAM_API_KEY
USER = [{"role": "user", "content": "Say hello"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"the {name} tool",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
        },
    }
    for name in ("read_file", "apply_patch", "git_diff")
]


@pytest.fixture(scope="module")
def proxy(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningProxy]:
    routes = f"""
[models.fake]
upstreams = [{{ base_url = "{upstream.base_url}", model = "upstream-model", api_key_env = "FAKE_UPSTREAM_KEY" }}]

[models.demo]
upstreams = [{{ backend = "demo" }}]

[models.unreachable]
upstreams = [{{ base_url = "http://127.0.0.1:{free_port()}/v1" }}]
"""
    flags = ["--proxy-key", PROXY_KEY, "--max-retries", "0", "--connect-timeout", "1"]
    with running_proxy(
        tmp_path_factory.mktemp("proxy"),
        *flags,
        routes=routes,
        env={"FAKE_UPSTREAM_KEY": UPSTREAM_KEY},
    ) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_upstream(upstream: FakeUpstream) -> None:
    upstream.reset()


class Caller:
    """One flavour of the official client: `create` for a body, `stream` for all chunks."""

    def __init__(self, flavour: str, base_url: str, api_key: str) -> None:
        self.flavour = flavour
        self.options: dict[str, Any] = {
            "base_url": base_url,
            "api_key": api_key,
            "max_retries": 0,
            "timeout": 20,
        }

    def create(self, **request: Any) -> ChatCompletion:
        if self.flavour == "sync":
            return openai.OpenAI(**self.options).chat.completions.create(**request)
        return asyncio.run(self._create_async(request))

    def stream(self, **request: Any) -> list[ChatCompletionChunk]:
        if self.flavour == "sync":
            stream = openai.OpenAI(**self.options).chat.completions.create(stream=True, **request)
            return list(stream)
        return asyncio.run(self._stream_async(request))

    async def _create_async(self, request: dict[str, Any]) -> ChatCompletion:
        async with openai.AsyncOpenAI(**self.options) as client:
            return await client.chat.completions.create(**request)

    async def _stream_async(self, request: dict[str, Any]) -> list[ChatCompletionChunk]:
        async with openai.AsyncOpenAI(**self.options) as client:
            stream = await client.chat.completions.create(stream=True, **request)
            return [chunk async for chunk in stream]


@pytest.fixture(params=["sync", "async"])
def client(request: pytest.FixtureRequest, proxy: RunningProxy) -> Caller:
    return Caller(request.param, proxy.base_url, PROXY_KEY)


def text_of(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)


def tool_calls_of(chunks: list[ChatCompletionChunk]) -> dict[int, dict[str, str]]:
    """Tool-call deltas put back together by index, as a client must."""
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += delta.id or ""
            if delta.function is not None:
                call["name"] += delta.function.name or ""
                call["arguments"] += delta.function.arguments or ""
    return calls


def test_proxy_streams_plain_text_when_the_upstream_streams_it(
    client: Caller, upstream: FakeUpstream
) -> None:
    upstream.script = lambda request: text_stream("Hello from the other side")

    chunks = client.stream(model="fake", messages=USER)

    assert text_of(chunks) == "Hello from the other side"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert upstream.requests[0].json["stream"] is True


def test_proxy_answers_in_one_body_when_the_request_does_not_stream(
    client: Caller, upstream: FakeUpstream
) -> None:
    upstream.script = lambda request: [completion_reply("All in one piece", usage=(7, 4))]

    completion = client.create(model="fake", messages=USER)

    assert completion.choices[0].message.content == "All in one piece"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens == 11
    assert upstream.requests[0].json.get("stream") in (None, False)


def test_proxy_relays_a_tool_call_split_across_many_chunks(
    client: Caller, upstream: FakeUpstream
) -> None:
    arguments = json.dumps({"path": "src/auth.js"})
    upstream.script = lambda request: tool_call_stream([("read_file", arguments)], pieces=8)

    chunks = client.stream(model="fake", messages=USER, tools=TOOLS)

    assert tool_calls_of(chunks) == {
        0: {"id": "call_0", "name": "read_file", "arguments": arguments}
    }
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_proxy_relays_parallel_tool_calls_by_index(client: Caller, upstream: FakeUpstream) -> None:
    calls = [
        ("read_file", json.dumps({"path": "a.py"})),
        ("git_diff", json.dumps({"path": "b.py"})),
    ]
    upstream.script = lambda request: tool_call_stream(calls, pieces=4)

    chunks = client.stream(model="fake", messages=USER, tools=TOOLS)

    assert tool_calls_of(chunks) == {
        index: {"id": f"call_{index}", "name": name, "arguments": arguments}
        for index, (name, arguments) in enumerate(calls)
    }


def test_proxy_ends_with_a_usage_chunk_when_the_caller_asks_for_usage(
    client: Caller, upstream: FakeUpstream
) -> None:
    upstream.script = lambda request: text_stream("Counted words", usage=(12, 2))

    chunks = client.stream(model="fake", messages=USER, stream_options={"include_usage": True})

    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (12, 2)
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert upstream.requests[0].json["stream_options"] == {"include_usage": True}


def test_proxy_passes_sampling_and_tool_parameters_through_unchanged(
    client: Caller, upstream: FakeUpstream
) -> None:
    tool_choice = {"type": "function", "function": {"name": "read_file"}}

    client.stream(
        model="fake",
        messages=USER,
        tools=TOOLS,
        tool_choice=tool_choice,
        temperature=0.25,
        max_tokens=64,
    )
    client.create(model="fake", messages=USER, tool_choice="auto", max_completion_tokens=32)

    streamed, whole = (request.json for request in upstream.requests)
    assert streamed["model"] == "upstream-model"
    assert streamed["messages"] == USER
    assert streamed["tools"] == TOOLS
    assert streamed["tool_choice"] == tool_choice
    assert (streamed["temperature"], streamed["max_tokens"]) == (0.25, 64)
    assert (whole["tool_choice"], whole["max_completion_tokens"]) == ("auto", 32)
    for request in upstream.requests:
        assert request.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_proxy_lists_exactly_its_configured_models(proxy: RunningProxy) -> None:
    api = openai.OpenAI(base_url=proxy.base_url, api_key=PROXY_KEY, max_retries=0)

    assert [model.id for model in api.models.list()] == ["fake", "demo", "unreachable"]
    assert api.models.retrieve("demo").id == "demo"


def test_proxy_streams_the_demo_models_first_tool_call_when_asked_to_add_logging(
    client: Caller,
) -> None:
    request = [{"role": "user", "content": "Add logging to src/auth.js"}]

    chunks = client.stream(model="demo", messages=request, tools=TOOLS)

    [call] = tool_calls_of(chunks).values()
    assert call["name"] == "read_file"
    assert json.loads(call["arguments"]) == {"path": "src/auth.js"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_proxy_answers_400_when_the_request_has_no_messages(client: Caller) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.create(model="fake", messages=[])

    assert raised.value.status_code == 400
    assert (raised.value.code, raised.value.param) == ("invalid_request", "messages")


def test_proxy_answers_401_when_the_proxy_key_is_wrong(proxy: RunningProxy) -> None:
    wrong = Caller("sync", proxy.base_url, "not-the-proxy-key")

    with pytest.raises(openai.AuthenticationError) as raised:
        wrong.create(model="demo", messages=USER)

    assert raised.value.status_code == 401
    assert raised.value.code == "invalid_api_key"


@pytest.mark.parametrize("stream", [False, True])
def test_proxy_answers_404_when_no_route_has_the_model(client: Caller, stream: bool) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        if stream:
            client.stream(model="gpt-nonexistent", messages=USER)
        else:
            client.create(model="gpt-nonexistent", messages=USER)

    assert raised.value.code == "model_not_found"
    assert raised.value.type == "invalid_request_error"


@pytest.mark.parametrize("stream", [False, True])
def test_proxy_passes_a_429_through_with_its_body_and_retry_after(
    client: Caller, upstream: FakeUpstream, stream: bool
) -> None:
    upstream.script = lambda request: [
        error_reply(
            429,
            "Rate limit reached for requests",
            code="rate_limit_exceeded",
            kind="requests",
            headers={"retry-after": "120", "x-ratelimit-remaining-requests": "0"},
        )
    ]

    with pytest.raises(openai.RateLimitError) as raised:
        if stream:
            client.stream(model="fake", messages=USER)
        else:
            client.create(model="fake", messages=USER)

    assert raised.value.body == {
        "message": "Rate limit reached for requests",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    assert raised.value.response.headers["retry-after"] == "120"
    assert raised.value.response.headers["x-ratelimit-remaining-requests"] == "0"


def test_proxy_passes_a_5xx_through_with_its_body(client: Caller, upstream: FakeUpstream) -> None:
    upstream.script = lambda request: [
        error_reply(503, "The engine is overloaded", kind="server_error")
    ]

    with pytest.raises(openai.InternalServerError) as raised:
        client.stream(model="fake", messages=USER)

    assert raised.value.status_code == 503
    assert raised.value.body == {
        "message": "The engine is overloaded",
        "type": "server_error",
        "param": None,
        "code": None,
    }


def test_proxy_answers_502_when_the_upstream_cannot_be_reached(client: Caller) -> None:
    with pytest.raises(openai.InternalServerError) as raised:
        client.create(model="unreachable", messages=USER)

    assert raised.value.status_code == 502
    assert raised.value.code == "upstream_unavailable"


def test_proxy_answers_504_when_the_upstream_sends_no_first_byte_in_time(
    client: Caller, upstream: FakeUpstream
) -> None:
    upstream.script = lambda request: [Sleep(30), *text_stream("too late")]

    with pytest.raises(openai.InternalServerError) as raised:
        client.stream(model="fake", messages=USER)

    assert raised.value.status_code == 504
    assert raised.value.code == "upstream_timeout"
    assert upstream.requests[0].disconnected.wait(5)


async def test_proxy_forwards_each_chunk_as_it_arrives_when_the_upstream_is_slow(
    proxy: RunningProxy, upstream: FakeUpstream
) -> None:
    slow = text_stream("first second")
    upstream.script = lambda request: [*slow[:2], Sleep(1.5), *slow[2:]]
    seen: list[str] = []
    upstream_done_at_first_word: bool | None = None

    async with openai.AsyncOpenAI(base_url=proxy.base_url, api_key=PROXY_KEY, max_retries=0) as api:
        stream = await api.chat.completions.create(model="fake", messages=USER, stream=True)
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                seen.append(chunk.choices[0].delta.content)
                if upstream_done_at_first_word is None:
                    upstream_done_at_first_word = upstream.requests[0].finished.is_set()

    assert seen == ["first ", "second"]
    assert upstream_done_at_first_word is False
    assert upstream.requests[0].finished.is_set()
