"""An OpenAI-compatible server as a backend, reached with the official client's raw stream.

Each `data:` line of the upstream's SSE is checked with `json.loads` and relayed
verbatim the moment it arrives: no typed chunk objects, no re-encoding, no
buffering. The client never retries (`max_retries=0`): retries are the failover
loop's job, and only before the first byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from types import TracebackType
from typing import Any

import httpx2
import openai

from llm_proxy.chunks import DONE_FRAME
from llm_proxy.errors import (
    ApiError,
    UpstreamBadResponse,
    UpstreamTimeout,
    UpstreamTruncated,
    UpstreamUnavailable,
    upstream_status_error,
)
from llm_proxy.settings import ProxySettings

# After [DONE], how long to wait for the rest of the body so the connection can be reused.
DRAIN_SECONDS = 0.1
# Request fields the client takes as arguments; every other field is passed through as is.
_ARGUMENT_FIELDS = ("model", "messages", "stream")


class UpstreamBackend:
    """Answers with `model` at an OpenAI-compatible `base_url` (OpenAI, vLLM, Ollama, ...)."""

    def __init__(
        self, base_url: str, api_key: str | None, model: str, settings: ProxySettings
    ) -> None:
        self._base_url = base_url
        self._model = model
        self._settings = settings
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or "no-key",
            max_retries=0,
            timeout=None,
        )

    @property
    def label(self) -> str:
        return f"{self._base_url} ({self._model})"

    async def stream(self, request: dict[str, Any]) -> AsyncGenerator[bytes, None]:
        loop = asyncio.get_running_loop()
        failures = _FailureTranslator(self._base_url, self._settings)
        with failures:
            async with (
                asyncio.timeout(self._settings.connect_timeout) as deadline,
                self._create(request, stream=True) as response,
            ):
                lines = response.iter_lines()
                async for line in lines:
                    if not line.startswith("data:"):
                        if failures.started and line.startswith(":"):
                            # a keep-alive comment: the upstream is silent, not gone
                            deadline.reschedule(loop.time() + self._settings.idle_timeout)
                        continue  # blank separators, comments, event names
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        deadline.reschedule(None)
                        yield DONE_FRAME
                        await _drain(lines)
                        return
                    try:
                        event = json.loads(payload)
                    except ValueError:
                        raise UpstreamBadResponse(
                            f"the upstream sent a chunk that is not JSON: {payload[:200]!r}"
                        ) from None
                    deadline.reschedule(None)
                    failures.started = True
                    yield b"data: " + payload.encode() + b"\n\n"
                    if isinstance(event, dict) and "error" in event:
                        return  # the upstream reported its own failure; it ends the stream
                    deadline.reschedule(loop.time() + self._settings.idle_timeout)
            if failures.started:
                raise UpstreamTruncated("the upstream ended the stream before [DONE]")
            raise UpstreamUnavailable("the upstream answered without any chunk")

    async def complete(self, request: dict[str, Any]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        with _FailureTranslator(self._base_url, self._settings):
            async with (
                asyncio.timeout(self._settings.connect_timeout) as deadline,
                self._create(request, stream=False) as response,
            ):
                deadline.reschedule(loop.time() + self._settings.idle_timeout)
                content = await response.read()
        try:
            body = json.loads(content)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise UpstreamBadResponse(
                f"the upstream answered with no JSON object: {content[:200]!r}"
            )
        return body

    async def aclose(self) -> None:
        await self._client.close()

    def _create(
        self, request: dict[str, Any], *, stream: bool
    ) -> contextlib.AbstractAsyncContextManager[openai.AsyncAPIResponse[Any]]:
        passed = {key: value for key, value in request.items() if key not in _ARGUMENT_FIELDS}
        return self._client.chat.completions.with_streaming_response.create(
            model=self._model,
            messages=request["messages"],
            stream=stream,
            extra_body=passed,
        )


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
        if isinstance(exc, openai.APIConnectionError | httpx2.TransportError):
            reason = exc.__cause__ or exc
            if self.started:
                raise UpstreamTruncated(
                    f"the connection to the upstream broke in the middle of its answer ({reason})"
                ) from None
            raise UpstreamUnavailable(
                f"cannot get an answer from the upstream at {self._base_url} ({reason})"
            ) from None


async def _drain(lines: AsyncIterator[str]) -> None:
    """Read what follows [DONE] for a moment so the connection goes back to the pool."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(DRAIN_SECONDS):
            async for _ in lines:
                pass
