"""The relay's parts: SSE bytes cut into checked events, the moving deadline, the listening
socket, and the upstream backend facing a server that does not speak HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator

import openai
import pytest

from llm_proxy.chunks import DONE_FRAME, sse_frame
from llm_proxy.deadline import Deadline
from llm_proxy.errors import UpstreamUnavailable
from llm_proxy.listener import listening_socket
from llm_proxy.settings import ProxySettings
from llm_proxy.sse_relay import End, SseRelay
from llm_proxy.upstream import UpstreamBackend
from tests.support.fake_upstream import DONE, Chunk, FakeUpstream, Raw, Sleep, Step, text_stream
from tests.support.proxy_process import RunningProxy, running_proxy

HELLO = {"choices": [{"index": 0, "delta": {"content": "Hello"}}]}
WORLD = {"choices": [{"index": 0, "delta": {"content": " world"}}]}
USER = [{"role": "user", "content": "Say hello"}]


def test_relay_gives_every_event_a_read_completes_as_one_piece_in_order() -> None:
    relay = SseRelay()

    relayed = relay.feed(sse_frame(HELLO) + sse_frame(WORLD) + b"data: {")

    assert relayed.frames == sse_frame(HELLO) + sse_frame(WORLD)
    assert relayed.end is None


def test_relay_joins_an_event_cut_between_reads_whatever_its_line_ends() -> None:
    payload = json.dumps(HELLO, separators=(",", ":")).encode()
    for ending in (b"\n", b"\r\n", b"\r"):
        relay = SseRelay()
        event = b"data: " + payload + ending + ending
        cuts = [event[:9], event[9:-2], event[-2:-1], event[-1:]]

        frames = b"".join(relay.feed(piece).frames for piece in cuts)

        assert frames == sse_frame(HELLO), ending


def test_relay_ends_the_answer_at_done_and_relays_nothing_after_it() -> None:
    relayed = SseRelay().feed(sse_frame(HELLO) + DONE_FRAME + sse_frame(WORLD))

    assert relayed.frames == sse_frame(HELLO) + DONE_FRAME
    assert relayed.end is End.DONE


def test_relay_ends_the_answer_after_relaying_an_upstream_error_event() -> None:
    error = {"error": {"message": "overloaded", "type": "server_error"}}

    relayed = SseRelay().feed(sse_frame(error) + sse_frame(WORLD))

    assert relayed.frames == sse_frame(error)
    assert relayed.end is End.UPSTREAM_ERROR


def test_relay_gives_the_events_before_a_payload_that_is_not_json_and_names_that_payload() -> None:
    relayed = SseRelay().feed(sse_frame(HELLO) + b"data: {not json\n\n" + sse_frame(WORLD))

    assert relayed.frames == sse_frame(HELLO)
    assert relayed.end is End.NOT_JSON
    assert relayed.bad_payload == b"{not json"
    assert SseRelay().feed(b'data: {"text": "\xff"}\n\n').end is End.NOT_JSON


def test_relay_notes_a_keep_alive_comment_and_skips_other_fields_without_relaying_them() -> None:
    relay = SseRelay()

    comment = relay.feed(b": keep-alive\n\n")
    fields = relay.feed(b"event: message\nid: 7\n" + sse_frame(HELLO))

    assert (comment.frames, comment.keepalive) == (b"", True)
    assert (fields.frames, fields.keepalive) == (sse_frame(HELLO), False)


async def test_deadline_raises_timeout_error_when_it_passes_unmoved() -> None:
    with pytest.raises(TimeoutError), Deadline(0.05):
        await asyncio.sleep(30)


async def test_deadline_lets_work_run_past_its_first_term_while_it_is_moved() -> None:
    with Deadline(0.5) as deadline:
        for _ in range(8):
            await asyncio.sleep(0.1)
            deadline.move(0.5)


async def test_deadline_lifted_never_fires_until_it_is_set_again() -> None:
    with Deadline(0.05) as deadline:
        deadline.move(None)
        await asyncio.sleep(0.2)
    with pytest.raises(TimeoutError), Deadline(30) as deadline:
        deadline.move(None)
        await asyncio.sleep(0.1)
        deadline.move(0.05)
        await asyncio.sleep(30)


async def test_deadline_leaves_a_cancellation_from_elsewhere_as_it_is() -> None:
    async def bounded() -> None:
        with Deadline(30):
            await asyncio.sleep(30)

    task = asyncio.create_task(bounded())
    await asyncio.sleep(0.01)
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task


async def test_proxy_listener_hands_out_connections_with_nagle_off() -> None:
    accepted: asyncio.Queue[int] = asyncio.Queue()

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        await accepted.put(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(on_connection, sock=listening_socket("127.0.0.1", 0))
    async with server:
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        nodelay = await asyncio.wait_for(accepted.get(), 10)
        writer.close()

    assert nodelay != 0


def test_proxy_listener_refuses_a_port_already_taken() -> None:
    with listening_socket("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            listening_socket("127.0.0.1", port)


async def test_upstream_backend_reports_the_upstream_unavailable_when_it_does_not_answer_http() -> (
    None
):
    async def not_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(not_http, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        backend = UpstreamBackend(f"http://127.0.0.1:{port}/v1", None, "m", ProxySettings())
        try:
            with pytest.raises(UpstreamUnavailable):
                await backend.complete({"model": "m", "messages": USER})
            with pytest.raises(UpstreamUnavailable):
                await anext(backend.stream({"model": "m", "messages": USER, "stream": True}))
        finally:
            await backend.aclose()


@pytest.fixture(scope="module")
def proxy(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningProxy]:
    flags = ["--llm-base-url", upstream.base_url, "--model", "fake", "--max-retries", "0"]
    with running_proxy(tmp_path_factory.mktemp("proxy"), *flags) as running:
        yield running


def test_official_client_reads_the_whole_answer_when_the_upstream_cuts_events_across_writes(
    proxy: RunningProxy, upstream: FakeUpstream
) -> None:
    role, *chunks, _ = text_stream("Hello there, world")
    cut: list[Step] = []
    for chunk in chunks:
        assert isinstance(chunk, Chunk)
        data = sse_frame(chunk.event).replace(b"\n", b"\r\n")
        cut += [Raw(data[:7]), Sleep(0.02), Raw(data[7:])]
    upstream.reset(lambda request: [role, *cut, DONE])
    api = openai.OpenAI(base_url=proxy.base_url, api_key="unused", max_retries=0)

    answer = list(api.chat.completions.create(model="fake", messages=USER, stream=True))

    assert "".join(chunk.choices[0].delta.content or "" for chunk in answer) == "Hello there, world"
    assert answer[-1].choices[0].finish_reason == "stop"
