"""A scriptable OpenAI-compatible upstream for tests: a real HTTP server on 127.0.0.1 speaking SSE.

    with FakeUpstream() as upstream:
        upstream.script = lambda request: text_stream("Hello there")
        ...  # point the proxy, or any OpenAI client, at upstream.base_url
        assert upstream.requests[0].json["temperature"] == 0.2

It runs in its own thread with its own event loop, so sync and async tests
alike can use it. `script` is a function of each request's JSON body that
returns the steps to play, in order:

- `Chunk(event)`: one `data: {json}` event; the 200 SSE headers go out first;
- `Raw(data)`: bytes sent as they are, after the SSE headers (`DONE` is `data: [DONE]`);
- `Sleep(seconds)`: a pause, cut short if the client disconnects;
- `Cut()`: close the connection right here, before or in the middle of an answer;
- `Reply(status, body, headers)`: a whole non-streamed response (a dict body is JSON).

A streamed answer ends with a clean end of its chunked body when the steps run
out, so a script without `DONE` tests a stream that ends early. Every request is
recorded in `requests`, with events telling when the client disconnected and
when the script was played to its end. POST /v1/chat/completions plays the script,
GET /v1/models lists `models` (recorded in `listings`, not `requests`); anything else gets
a 404. With `api_key` set, a
request without that bearer key gets OpenAI's 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from llm_proxy.chunks import ChunkBuilder, split_words, sse_frame, usage_counts

FAKE_MODEL = "fake-model"


@dataclass(frozen=True)
class Chunk:
    """One SSE `data:` event carrying this JSON object."""

    event: dict[str, Any]


@dataclass(frozen=True)
class Raw:
    """Bytes written as they are, inside the SSE body."""

    data: bytes


@dataclass(frozen=True)
class Sleep:
    """A pause; ends early when the client disconnects."""

    seconds: float


@dataclass(frozen=True)
class Cut:
    """Close the connection without finishing the response."""


@dataclass(frozen=True)
class Reply:
    """A complete non-streamed response."""

    status: int
    body: dict[str, Any] | bytes
    headers: dict[str, str] = field(default_factory=dict)


Step = Chunk | Raw | Sleep | Cut | Reply
Script = Callable[[dict[str, Any]], Iterable[Step]]
DONE = Raw(b"data: [DONE]\n\n")


@dataclass
class RecordedRequest:
    """One request as the fake upstream received it."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    received_at: float = field(default_factory=time.monotonic)
    disconnected: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)


def text_stream(
    text: str, *, usage: tuple[int, int] | None = None, model: str = FAKE_MODEL
) -> list[Step]:
    """A whole streamed text answer: role, one chunk per word, finish, optional usage, DONE."""
    chunks = _builder(model, usage)
    steps: list[Step] = [Chunk(chunks.role())]
    steps += [Chunk(chunks.text(word)) for word in split_words(text)]
    steps.append(Chunk(chunks.finish("stop")))
    return _ending(chunks, steps, usage)


def pieces_stream(piece: str, count: int, model: str = FAKE_MODEL) -> list[Step]:
    """A huge answer without building it: the same text chunk `count` times."""
    chunks = _builder(model, None)
    steps: list[Step] = [Chunk(chunks.role())]
    steps += [Chunk(chunks.text(piece))] * count
    steps.append(Chunk(chunks.finish("stop")))
    return _ending(chunks, steps, None)


def tool_call_stream(
    calls: Sequence[tuple[str, str]],
    *,
    pieces: int = 6,
    usage: tuple[int, int] | None = None,
    model: str = FAKE_MODEL,
) -> list[Step]:
    """A streamed answer of (name, arguments JSON) calls, each call's arguments in `pieces` chunks."""
    chunks = _builder(model, usage)
    numbered = [(f"call_{index}", name, arguments) for index, (name, arguments) in enumerate(calls)]
    steps: list[Step] = [Chunk(chunks.role())]
    steps += [Chunk(chunk) for chunk in chunks.tool_calls(numbered, pieces)]
    steps.append(Chunk(chunks.finish("tool_calls")))
    return _ending(chunks, steps, usage)


def paced(steps: list[Step], seconds: float) -> list[Step]:
    """The same answer with a pause after each chunk, like a model generating it."""
    out: list[Step] = []
    for step in steps:
        out.append(step)
        if isinstance(step, Chunk):
            out.append(Sleep(seconds))
    return out


def completion_reply(
    text: str, *, usage: tuple[int, int] = (5, 5), model: str = FAKE_MODEL
) -> Reply:
    """A non-streamed text answer."""
    message = {"role": "assistant", "content": text, "refusal": None}
    body = _builder(model, None).completion(message, "stop", usage_counts(*usage))
    return Reply(200, body)


def error_reply(
    status: int,
    message: str,
    *,
    code: str | None = None,
    kind: str = "invalid_request_error",
    headers: dict[str, str] | None = None,
) -> Reply:
    """An error response in OpenAI's shape."""
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return Reply(status, body, headers or {})


def encode(step: Chunk | Raw) -> bytes:
    """The SSE bytes of a chunk or raw step."""
    return sse_frame(step.event) if isinstance(step, Chunk) else step.data


def _builder(model: str, usage: tuple[int, int] | None) -> ChunkBuilder:
    return ChunkBuilder("chatcmpl-fake", int(time.time()), model, include_usage=usage is not None)


def _ending(chunks: ChunkBuilder, steps: list[Step], usage: tuple[int, int] | None) -> list[Step]:
    if usage is not None:
        steps.append(Chunk(chunks.usage(usage_counts(*usage))))
    steps.append(DONE)
    return steps


def prompt_tokens(request: dict[str, Any], chars_per_token: float) -> int:
    """The upstream's own count of a request's prompt: its messages and tools as JSON."""
    text = json.dumps(request.get("messages") or []) + json.dumps(request.get("tools") or [])
    return int(len(text) / chars_per_token)


def windowed(
    window: int,
    answer: Callable[[dict[str, Any], int], Iterable[Step]],
    *,
    chars_per_token: float = 4.0,
    overflows: list[int] | None = None,
) -> Script:
    """A script for a model with a `window`-token context, as OpenAI enforces it: a request
    whose prompt plus `max_tokens` does not fit gets 400 `context_length_exceeded` (its size
    appended to `overflows`); one that fits is answered by `answer(request, prompt_tokens)`."""

    def script(request: dict[str, Any]) -> Iterable[Step]:
        tokens = prompt_tokens(request, chars_per_token)
        if tokens + int(request.get("max_tokens") or 0) > window:
            if overflows is not None:
                overflows.append(tokens)
            return [
                error_reply(
                    400,
                    f"This model's maximum context length is {window} tokens. However, your "
                    f"messages resulted in {tokens} tokens. Please reduce the length of the "
                    "messages.",
                    code="context_length_exceeded",
                )
            ]
        return answer(request, tokens)

    return script


def endless_text(word: str = "and ", *, pause: float = 0.001) -> Iterator[Step]:
    """A model that never stops: one word after another, no finish, no end, until the
    client goes away or `max_tokens` of words have been sent (then finish `length`)."""
    chunks = _builder(FAKE_MODEL, None)
    yield Chunk(chunks.role())
    for _ in itertools.count():
        yield Chunk(chunks.text(word))
        yield Sleep(pause)


def capped_endless_text(request: dict[str, Any], word: str = "and ") -> Iterator[Step]:
    """`endless_text` that honours `max_tokens` (one word a token): it ends `length`."""
    limit = request.get("max_tokens")
    if not limit:
        yield from endless_text(word)
        return
    chunks = _builder(FAKE_MODEL, None)
    yield Chunk(chunks.role())
    for _ in range(int(limit)):
        yield Chunk(chunks.text(word))
    yield Chunk(chunks.finish("length"))
    yield DONE


def default_script(request: dict[str, Any]) -> list[Step]:
    """A short greeting, streamed or not as the request asks."""
    text = "Hello from the fake upstream."
    return text_stream(text) if request.get("stream") else [completion_reply(text)]


class FakeUpstream:
    """The server; use it as a context manager, or call start() and stop()."""

    def __init__(self, script: Script = default_script) -> None:
        self.script = script
        self.requests: list[RecordedRequest] = []
        self.models = [FAKE_MODEL]
        self.listings: list[RecordedRequest] = []
        self.api_key: str | None = None
        self.connections_accepted = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as `base_url`."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeUpstream:
        """Listen on a free loopback port."""
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def stop(self) -> None:
        """Close the listener and every open connection."""
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def reset(self, script: Script = default_script) -> None:
        """Forget recorded requests and play `script` from now on."""
        self.script = script
        self.requests.clear()

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self.connections_accepted += 1
        try:
            while await self._answer_one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def _answer_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read one request and play its script; False when the connection is done."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, path, _ = request_line.split(" ", 2)
        headers = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        recorded = RecordedRequest(method, path, headers, json.loads(body) if body else None)
        if (method, path) == ("GET", "/v1/models"):
            self.listings.append(recorded)  # readiness probes, kept apart from the requests
        else:
            self.requests.append(recorded)
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            refused = error_reply(401, "Incorrect API key provided.", code="invalid_api_key")
            return await _write_reply(writer, refused)
        if (method, path) == ("GET", "/v1/models"):
            listing = [
                {"id": name, "object": "model", "created": 0, "owned_by": "fake"}
                for name in self.models
            ]
            return await _write_reply(writer, Reply(200, {"object": "list", "data": listing}))
        if (method, path) != ("POST", "/v1/chat/completions"):
            return await _write_reply(writer, error_reply(404, f"no {method} {path} here"))
        steps = self.script(recorded.json)
        gone = asyncio.Event()
        watcher = asyncio.create_task(_watch_close(reader, recorded, gone))
        try:
            return await _play(steps, writer, recorded, gone)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


async def _watch_close(
    reader: asyncio.StreamReader, recorded: RecordedRequest, gone: asyncio.Event
) -> None:
    """While a response plays, the client sends nothing: any end of input is a disconnect."""
    with contextlib.suppress(ConnectionError):
        await reader.read(1)
    recorded.disconnected.set()
    gone.set()


async def _play(
    steps: Iterable[Step],
    writer: asyncio.StreamWriter,
    recorded: RecordedRequest,
    gone: asyncio.Event,
) -> bool:
    """Play the steps; True when the connection can take another request."""
    streaming = False
    try:
        for step in steps:
            if gone.is_set():
                return False
            if isinstance(step, Sleep):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(gone.wait(), step.seconds)
            elif isinstance(step, Cut):
                await writer.drain()
                writer.transport.abort()
                recorded.finished.set()
                return False
            elif isinstance(step, Reply):
                await _write_reply(writer, step)
                recorded.finished.set()
                return True
            else:
                if not streaming:
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
                        b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
                    )
                    streaming = True
                data = encode(step)
                writer.write(b"%x\r\n%s\r\n" % (len(data), data))
                await writer.drain()
        if gone.is_set():
            return False
        if streaming:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        else:
            await _write_reply(writer, Reply(200, b""))
        recorded.finished.set()
        return True
    except ConnectionError:
        recorded.disconnected.set()
        return False


async def _write_reply(writer: asyncio.StreamWriter, reply: Reply) -> bool:
    """Write a whole response; True: the connection can take another request."""
    body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
    headers = {
        "content-type": "application/json",
        **reply.headers,
        "content-length": str(len(body)),
    }
    head = f"HTTP/1.1 {reply.status} Fake\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers.items()
    )
    writer.write(head.encode("latin-1") + b"\r\n" + body)
    await writer.drain()
    return True


async def upstream_answered(upstream: FakeUpstream, timeout: float) -> bool:
    """Whether the upstream wrote all of its answer to the first request within `timeout`."""
    deadline = time.monotonic() + timeout
    while not upstream.requests and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if not upstream.requests:
        return False
    finished = upstream.requests[0].finished
    return await asyncio.to_thread(finished.wait, max(0.0, deadline - time.monotonic()))
