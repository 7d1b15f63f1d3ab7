"""An OpenAI-compatible server as a backend, reached through the official client's `post`.

The caller's request body goes upstream as it came (only `model` becomes the
upstream's name for it): the client brings its auth, base URL and error types,
but not its request-parameter transform, which walks every message and tool
schema against its types and costs 1-15 ms a request as a conversation grows.

The client runs on its aiohttp transport, its documented choice for
concurrency: aiohttp parses HTTP in C, keeps its socket reading instead of
pausing and resuming it around every read, and hands over all the body that a
read brought, across HTTP chunks. Measured here, that is a quarter of the CPU
per chunk of httpx2's default stack, which returns one HTTP chunk at a time.
Each `data:` event is checked with `json.loads` and relayed as it came, every
event of a read in one write: no typed chunk objects, no re-encoding, no
waiting for more. The client never retries (`max_retries=0`): retries are the
failover loop's job, and only before the first byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from types import TracebackType
from typing import Any

import aiohttp
import httpx2
import openai

from llm_proxy.chunks import DONE_FRAME, completion_as_chunks, sse_frame
from llm_proxy.deadline import Deadline
from llm_proxy.errors import (
    ApiError,
    UpstreamAuthFailed,
    UpstreamBadResponse,
    UpstreamStatus,
    UpstreamTimeout,
    UpstreamTruncated,
    UpstreamUnavailable,
    upstream_status_error,
)
from llm_proxy.settings import ProxySettings
from llm_proxy.sse_relay import End, SseRelay

# After [DONE], how long to wait for the rest of the body so the connection can be reused.
DRAIN_SECONDS = 0.1


class UpstreamBackend:
    """Answers with `model` at an OpenAI-compatible `base_url` (OpenAI, vLLM, Ollama, ...);
    with no `model`, with the model the caller named."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str | None,
        settings: ProxySettings,
        *,
        streams: bool = True,
    ) -> None:
        self._base_url = base_url
        self._model = model
        self._settings = settings
        self._streams = streams
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or "no-key",
            max_retries=0,
            timeout=None,
            http_client=openai.DefaultAioHttpClient(timeout=None),
        )

    @property
    def label(self) -> str:
        return f"{self._base_url} ({self._model or 'model named by the caller'})"

    async def stream(self, request: dict[str, Any]) -> AsyncGenerator[bytes, None]:
        if not self._streams:
            yield await self._complete_as_stream(request)
            return
        idle_timeout = self._settings.idle_timeout
        failures = _FailureTranslator(self._base_url, self._settings)
        relay = SseRelay()
        with failures, Deadline(self._settings.connect_timeout) as deadline:
            response = await self._post(request, stream=True)
            async with contextlib.aclosing(response):
                reads = response.aiter_bytes()
                async for data in reads:
                    relayed = relay.feed(data)
                    if relayed.frames:
                        failures.started = True
                        deadline.move(None)  # the caller's pace is not the upstream's silence
                        yield relayed.frames
                        deadline.move(idle_timeout)
                    elif relayed.keepalive and failures.started:
                        deadline.move(idle_timeout)
                    if relayed.end is End.DONE:
                        await _drain(reads)
                        return
                    if relayed.end is End.UPSTREAM_ERROR:
                        return  # the upstream reported its own failure; it ends the stream
                    if relayed.end is End.NOT_JSON:
                        raise UpstreamBadResponse(
                            "the upstream sent a chunk that is not JSON: "
                            f"{relayed.bad_payload[:200].decode(errors='replace')!r}"
                        )
            if failures.started:
                raise UpstreamTruncated("the upstream ended the stream before [DONE]")
            raise UpstreamUnavailable("the upstream answered without any chunk")

    async def complete(self, request: dict[str, Any]) -> dict[str, Any]:
        with (
            _FailureTranslator(self._base_url, self._settings),
            Deadline(self._settings.connect_timeout) as deadline,
        ):
            response = await self._post(request, stream=False)
            async with contextlib.aclosing(response):
                deadline.move(self._settings.idle_timeout)
                content = await response.aread()
        try:
            body = json.loads(content)
        except (ValueError, RecursionError):
            body = None
        if not isinstance(body, dict):
            raise UpstreamBadResponse(
                f"the upstream answered with no JSON object: {content[:200]!r}"
            )
        return body

    async def model_names(self) -> list[str]:
        """The models the upstream lists, for a wildcard route's `/v1/models`."""
        with _FailureTranslator(self._base_url, self._settings):
            async with asyncio.timeout(self._settings.connect_timeout):
                page = await self._client.models.list()
        return [entry.id for entry in page.data]

    async def problem(self) -> str | None:
        """Why the upstream cannot serve right now (unreachable, key refused), or None."""
        try:
            await self.model_names()
        except UpstreamAuthFailed:
            return f"{self._base_url} refuses the API key configured for it"
        except UpstreamStatus as exc:
            if exc.status == 404:
                return None  # reachable; it just does not list its models
            return f"{self._base_url}: {exc.message}"
        except ApiError as exc:
            return f"{self._base_url}: {exc.message}"
        return None

    async def _complete_as_stream(self, request: dict[str, Any]) -> bytes:
        """Ask an upstream that cannot stream (tool calls, on llama-cpp-python) for the whole
        answer, and send it back as OpenAI's chunks: one write, as if it came at once."""
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        body = {key: value for key, value in request.items() if key != "stream_options"}
        completion = await self.complete(body)
        if not completion.get("choices"):
            raise UpstreamBadResponse("the upstream answered with no choices")
        chunks = completion_as_chunks(completion, include_usage)
        return b"".join(sse_frame(chunk) for chunk in chunks) + DONE_FRAME

    async def aclose(self) -> None:
        await self._client.close()

    async def _post(self, request: dict[str, Any], *, stream: bool) -> httpx2.Response:
        """The upstream's response, once its headers are in; its body is left to read."""
        body = {**request, "stream": stream}
        if self._model is not None:
            body["model"] = self._model
        response: httpx2.Response = await self._client.post(
            "/chat/completions", cast_to=httpx2.Response, body=body, stream=True
        )
        return response


class _FailureTranslator:
    """Turns what the client and its transport raise into the proxy's upstream errors.

    `started` is set by the caller once a chunk has been relayed: from then on a broken
    connection means a truncated answer, not an unreachable upstream.
    """

    def __init__(self, base_url: str, settings: ProxySettings) -> None:
        self._base_url = base_url
        self._settings = settings
        self.started = False

    def __enter__(self) -> _FailureTranslator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None or isinstance(exc, ApiError):
            return
        if isinstance(exc, TimeoutError):
            if self.started:
                raise UpstreamTimeout(
                    f"the upstream sent nothing for {self._settings.idle_timeout:g} s "
                    "in the middle of its answer"
                ) from None
            raise UpstreamTimeout(
                f"the upstream sent no first chunk within {self._settings.connect_timeout:g} s"
            ) from None
        if isinstance(exc, openai.APIStatusError):
            response = exc.response
            headers = {name.lower(): value for name, value in response.headers.items()}
            raise upstream_status_error(response.status_code, response.content, headers) from None
        # aiohttp raises the errors its transport does not map (a malformed response) as they are.
        if isinstance(exc, openai.APIConnectionError | httpx2.TransportError | aiohttp.ClientError):
            reason = exc.__cause__ or exc
            if self.started:
                raise UpstreamTruncated(
                    f"the connection to the upstream broke in the middle of its answer ({reason})"
                ) from None
            raise UpstreamUnavailable(
                f"cannot get an answer from the upstream at {self._base_url} ({reason})"
            ) from None


async def _drain(reads: AsyncIterator[bytes]) -> None:
    """Read what follows [DONE] for a moment so the connection goes back to the pool."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(DRAIN_SECONDS):
            async for _ in reads:
                pass
