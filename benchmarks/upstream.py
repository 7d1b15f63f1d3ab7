"""The bench's upstream LLM: OpenAI's streamed chunks, each token stamped with when it was written.

    python -m benchmarks.upstream --port 9000

`POST /v1/chat/completions` with `stream: true` answers in OpenAI's exact
format (role chunk, one `chat.completion.chunk` per token, finish, usage when
asked, `[DONE]`), each token's text carrying its emission time (see
`benchmarks.stamps`). The last user message's `Directive` says how many tokens,
how fast, and whether a `read_file` tool call comes first. `GET /v1/models`
lists the one model. It is a bare asyncio HTTP/1.1 server with keep-alive,
run in a process of its own so that it never shares a CPU-bound event loop
with the clients it feeds.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import signal
import time
from collections.abc import Sequence
from typing import Any

import uvloop

from benchmarks.directive import Directive
from benchmarks.stamps import stamp_text
from llm_proxy import DONE_FRAME, SSE_CONTENT_TYPE, ChunkBuilder, sse_frame, usage_counts

MODEL = "bench"
BENCH_FILE = "bench.txt"
_STREAM_HEAD = (
    f"HTTP/1.1 200 OK\r\ncontent-type: {SSE_CONTENT_TYPE}\r\ncache-control: no-cache\r\n"
    "transfer-encoding: chunked\r\n\r\n"
).encode()
_END_OF_BODY = b"0\r\n\r\n"
_PLACEHOLDER = "@@TOKEN@@"


def http_chunk(data: bytes) -> bytes:
    """`data` as one chunk of a chunked HTTP body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


class BenchUpstream:
    """Answers chat completions by playing the directive of each request."""

    def __init__(self) -> None:
        self._numbers = itertools.count(1)
        self._connections: set[asyncio.StreamWriter] = set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer requests on one connection until the client closes it."""
        self._connections.add(writer)
        try:
            while await self._answer_one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._connections.discard(writer)
            writer.close()

    def close_connections(self) -> None:
        """Shutdown: drop every open connection."""
        for writer in list(self._connections):
            writer.close()

    async def _answer_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """One request and its answer; False when the connection is to be closed."""
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, _, header_block = head.partition(b"\r\n")
        method, path, _ = request_line.split(b" ", 2)
        headers = {}
        for line in header_block.split(b"\r\n"):
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
        if (method, path) == (b"POST", b"/v1/chat/completions"):
            request = json.loads(body)
            if request.get("stream"):
                await self._stream(request, writer)
            else:
                _write_json(writer, 400, _error("the bench upstream only streams"))
        elif (method, path) == (b"GET", b"/v1/models"):
            model = {"id": MODEL, "object": "model", "created": 0, "owned_by": "bench"}
            _write_json(writer, 200, {"object": "list", "data": [model]})
        else:
            _write_json(writer, 404, _error(f"no {method.decode()} {path.decode()} here"))
        await writer.drain()
        return headers.get(b"connection", b"").lower() != b"close"

    async def _stream(self, request: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        messages = request["messages"]
        directive = Directive.from_messages(messages)
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        number = next(self._numbers)
        chunks = ChunkBuilder(
            f"chatcmpl-bench{number}",
            int(time.time()),
            request.get("model") or MODEL,
            include_usage=include_usage,
        )
        writer.write(_STREAM_HEAD + http_chunk(sse_frame(chunks.role())))
        if directive.tool_call and messages[-1].get("role") != "tool":
            call = (f"call_{number}", "read_file", json.dumps({"path": BENCH_FILE}))
            for event in chunks.tool_calls([call], pieces=1):
                writer.write(http_chunk(sse_frame(event)))
            reason, completion_tokens = "tool_calls", 1
        else:
            await _play_tokens(writer, chunks, directive)
            reason, completion_tokens = "stop", directive.tokens
        ending = [chunks.finish(reason)]
        if include_usage:
            ending.append(chunks.usage(usage_counts(len(messages), completion_tokens)))
        writer.write(
            b"".join(http_chunk(sse_frame(event)) for event in ending)
            + http_chunk(DONE_FRAME)
            + _END_OF_BODY
        )


async def _play_tokens(
    writer: asyncio.StreamWriter, chunks: ChunkBuilder, directive: Directive
) -> None:
    """Write the directive's tokens, each stamped the moment it is written."""
    prefix, suffix = sse_frame(chunks.text(_PLACEHOLDER)).split(_PLACEHOLDER.encode())
    interval = 1 / directive.rate if directive.rate > 0 else 0.0
    loop = asyncio.get_running_loop()
    start = loop.time()
    for index in range(directive.tokens):
        if interval:
            delay = start + index * interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        writer.write(http_chunk(prefix + stamp_text(time.monotonic_ns()).encode() + suffix))
        await writer.drain()


def _write_json(writer: asyncio.StreamWriter, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    writer.write(
        b"HTTP/1.1 %d Bench\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
        % (status, len(data), data)
    )


def _error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None}}


async def serve_until_signalled(host: str, port: int) -> None:
    """Listen on host:port until SIGINT or SIGTERM."""
    upstream = BenchUpstream()
    server = await asyncio.start_server(upstream.serve, host, port, backlog=4096)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    upstream.close_connections()
    await server.wait_closed()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the upstream in this process."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve_until_signalled(args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
