"""The orchestrator's LLM client: one streamed chat completion per core request.

It uses the official `openai` client for the connection, auth, base URL and
typed errors, on the client's aiohttp transport (`DefaultAioHttpClient`, its
documented choice for concurrency: HTTP parsed in C, all of a read's body at
once), and its lower-level `post` for the request: the body goes as it is, with
no typed parameter transform walking every message of the history on every
request (1 ms on a first turn, 15 ms after fifty), and the answer comes back as
raw bytes, decoded by `ChatStreamDecoder` (the typed per-chunk stream costs
~165 us of CPU per chunk). After `[DONE]` the rest of the body is read, so the
connection goes back to the pool: a new connection per request costs a connect,
an accept in the proxy and their wake-ups before every first token.
Retries are off here (`max_retries=0`) by default: the llm_proxy owns the
stack's only retry loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx2
import openai

from orchestrator.commands import StartLlmRequest
from orchestrator.context import default_window
from orchestrator.events import Event, LlmFailed
from orchestrator.stream import ChatStreamDecoder
from wire import AgentServiceError, ErrorCode, LlmFailureKind

log = logging.getLogger(__name__)

# After [DONE], how long the rest of the body may take to come, so the connection is reused.
DRAIN_SECONDS = 0.1


@dataclass(frozen=True, slots=True)
class LlmSettings:
    """Where and how to call the model."""

    base_url: str
    api_key: str | None = None
    model: str | None = None
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 300.0
    max_retries: int = 0


class LlmClient:
    """Streams chat completions and turns them into session events."""

    def __init__(self, settings: LlmSettings) -> None:
        self.settings = settings
        timeout = openai.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s)
        self._client = openai.AsyncOpenAI(
            base_url=settings.base_url,
            api_key=settings.api_key or "not-needed",
            max_retries=settings.max_retries,
            timeout=timeout,
            http_client=openai.DefaultAioHttpClient(timeout=timeout),
        )
        self._model = settings.model

    async def model(self) -> str:
        """The configured model, or the endpoint's first listed one."""
        if self._model is None:
            page = await self._client.models.list()
            models = [entry.id async for entry in page]
            if not models:
                raise LlmSetupError("the LLM endpoint lists no models; pass --model")
            self._model = models[0]
        return self._model

    async def stream(self, request: StartLlmRequest, feed: Callable[[Event], None]) -> None:
        """Run the request; feed every resulting event. Cancel the task to abort it."""
        decoder = ChatStreamDecoder(request.request_id)
        streaming = False
        try:
            body = _request_body(request, await self.model())
            response: httpx2.Response = await self._client.post(
                "/chat/completions", cast_to=httpx2.Response, body=body, stream=True
            )
            streaming = True
            async with contextlib.aclosing(response), asyncio.timeout(None) as rest_of_body:
                async for data in response.aiter_bytes():
                    for event in decoder.feed(data):
                        feed(event)
                    if decoder.done and rest_of_body.when() is None:
                        # the answer is complete: read on briefly (a timeout ends it quietly)
                        rest_of_body.reschedule(asyncio.get_running_loop().time() + DRAIN_SECONDS)
            for event in decoder.finish():
                feed(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if decoder.done:
                return
            feed(_failure(request.request_id, exc, streaming))

    async def close(self) -> None:
        """Release the connection pool."""
        await self._client.close()


def _request_body(request: StartLlmRequest, model: str) -> dict[str, Any]:
    """The streamed request of the conversation: no `tools` key when there are none (OpenAI
    refuses an empty list), `max_tokens` when the core sets one, usage asked for."""
    body: dict[str, Any] = {
        "model": model,
        "messages": request.messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if request.tools:
        body["tools"] = request.tools
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    return body


def lookup_context_window(settings: LlmSettings, timeout_s: float = 5.0) -> int:
    """The model's context window: the `context_window` its endpoint lists for it (the
    llm-proxy does, from its routes file), else the known window of its name.

    Blocking, once at startup; an endpoint that cannot be asked falls back to the name.
    """
    client = openai.OpenAI(
        base_url=settings.base_url,
        api_key=settings.api_key or "not-needed",
        max_retries=0,
        timeout=timeout_s,
    )
    model = settings.model
    try:
        entries = list(client.models.list())
    except openai.OpenAIError as exc:
        log.warning("cannot list the models for their context window", extra={"error": str(exc)})
        return default_window(model)
    finally:
        client.close()
    for entry in entries:
        if model is None or entry.id == model:
            window = (entry.model_extra or {}).get("context_window")
            if isinstance(window, int) and window > 0:
                return window
            return default_window(entry.id)
    return default_window(model)


class LlmSetupError(AgentServiceError):
    """The LLM endpoint cannot be used as configured."""

    code = ErrorCode.LLM_BAD_REQUEST


STATUS_CODES: dict[int, ErrorCode] = {
    401: ErrorCode.LLM_AUTH,
    403: ErrorCode.LLM_AUTH,
    429: ErrorCode.LLM_RATE_LIMITED,
    504: ErrorCode.LLM_TIMEOUT,
}
"""An endpoint's error status → what the IDE is told; any other 5xx is `llm_upstream_error`,
any other status `llm_bad_request` (`llm_context_exceeded` when its body says so)."""

STREAM_EXCEPTIONS: tuple[tuple[type[BaseException], ErrorCode, str], ...] = (
    (httpx2.TimeoutException, ErrorCode.LLM_TIMEOUT, "the model's stream stalled"),
)
"""An exception raised while the body streams (the SDK wraps none of them) → code and
message, first match; any other means the stream broke: `llm_truncated`."""

UNREACHABLE_CAUSES: tuple[type[BaseException], ...] = (aiohttp.ClientConnectorError,)
"""Causes under an SDK error that mean the endpoint could not be reached at all: the SDK's
aiohttp transport reports a refused connection as a connect *timeout*."""


def _caused_by(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, kinds):
            return True
        cause = cause.__cause__
    return False


def _failure(request_id: str, exc: BaseException, streaming: bool) -> LlmFailed:
    if isinstance(exc, openai.APIStatusError):
        code = status_code(exc.status_code)
        if code == ErrorCode.LLM_BAD_REQUEST and is_context_overflow(exc.body):
            code = ErrorCode.LLM_CONTEXT_EXCEEDED
        detail = _upstream_detail(exc)
        return LlmFailed(
            request_id,
            code,
            f"LLM endpoint answered {exc.status_code}: {detail}",
            LlmFailureKind.STATUS,
            exc.status_code,
            detail,
        )
    transport = LlmFailureKind.TRANSPORT
    unreachable = _caused_by(exc, UNREACHABLE_CAUSES)
    if isinstance(exc, openai.APITimeoutError) and not unreachable:
        return LlmFailed(
            request_id, ErrorCode.LLM_TIMEOUT, "the LLM endpoint did not answer in time", transport
        )
    if isinstance(exc, openai.APIConnectionError):
        message = f"cannot reach the LLM endpoint: {exc}"
        return LlmFailed(request_id, ErrorCode.LLM_UNAVAILABLE, message, transport)
    if streaming:
        for kind, code, message in STREAM_EXCEPTIONS:
            if isinstance(exc, kind):
                return LlmFailed(request_id, code, message, transport)
        message = f"the model's stream broke: {exc}"
        return LlmFailed(request_id, ErrorCode.LLM_TRUNCATED, message, transport)
    if isinstance(exc, LlmSetupError):
        return LlmFailed(request_id, exc.code, str(exc))
    log.exception("llm request failed", extra={"request_id": request_id})
    return LlmFailed(
        request_id, ErrorCode.INTERNAL, f"the LLM request failed: {type(exc).__name__}"
    )


def status_code(status: int) -> ErrorCode:
    """What the IDE is told for an endpoint's error status (see `STATUS_CODES`)."""
    if status in STATUS_CODES:
        return STATUS_CODES[status]
    return ErrorCode.LLM_UPSTREAM_ERROR if status >= 500 else ErrorCode.LLM_BAD_REQUEST


_OVERFLOW_WORDS = (
    "context_length_exceeded",
    "context length",
    "context window",
    "maximum context",
    "exceed context",
    "too many tokens",
    "prompt is too long",
)


def is_context_overflow(body: object) -> bool:
    """A 400 body that says the request does not fit the model's context window: OpenAI's
    `context_length_exceeded` code, or the words vLLM, llama.cpp and Ollama use for it."""
    inner = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(inner, dict):
        text = f"{inner.get('code') or ''} {inner.get('message') or ''}"
    else:
        text = str(inner or "")
    lowered = text.lower()
    return any(word in lowered for word in _OVERFLOW_WORDS)


def _upstream_detail(exc: openai.APIStatusError) -> str:
    """The endpoint's own words for its error status: its error's message, else the SDK's."""
    body: Any = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return exc.message
