"""The proxy's HTTP face: OpenAI's chat completions (SSE or JSON), the model list, health.

A streamed answer is committed (status 200, SSE headers) only once its first
frame exists, so every failure before that is a plain HTTP error in OpenAI's
shape. After it, a failure becomes one `data: {"error": ...}` event and the
stream ends without `[DONE]`: a caller can never mistake a broken answer for a
short one. A caller that disconnects cancels the handler, which closes the
upstream request on the spot.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import signal
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sanic import Request, Sanic
from sanic.exceptions import MethodNotAllowed, NotFound, SanicException
from sanic.response import HTTPResponse
from sanic.response import json as json_response

from llm_proxy.backend import Backend
from llm_proxy.chat_request import parse_chat_request
from llm_proxy.chunks import DONE_FRAME, SSE_CONTENT_TYPE, sse_frame
from llm_proxy.cross_site import (
    CrossSitePolicy,
    HostNotAllowed,
    OriginNotAllowed,
    UnsupportedContentType,
)
from llm_proxy.errors import (
    ApiError,
    InvalidProxyKey,
    InvalidRequest,
    ModelNotFound,
    UnknownUrl,
    UpstreamError,
)
from llm_proxy.failover import RetryPolicy, first_success, open_stream
from llm_proxy.keys import ProxyKeys
from llm_proxy.routes import WILDCARD, Routes, build_backends
from llm_proxy.settings import ProxySettings
from llm_proxy.upstream import UpstreamBackend
from service_logging import ThrottledLog, throttle_accept_errors

logger = logging.getLogger(__name__)
_refusals = ThrottledLog(logger)
REFUSALS = (InvalidProxyKey, HostNotAllowed, OriginNotAllowed, UnsupportedContentType)

APP_NAME = "llm-proxy"
HEALTH_PATH = "/healthz"
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
# The proxy's own timeouts bound every request; Sanic's must never cut one first.
_SANIC_RESPONSE_TIMEOUT = 24 * 3600
_GRACEFUL_SHUTDOWN_SECONDS = 3.0


def create_app(
    routes: Routes,
    keys: ProxyKeys,
    settings: ProxySettings,
    cross_site: CrossSitePolicy,
    windows: Mapping[str, int] | None = None,
) -> Sanic[Any, Any]:
    """The Sanic app serving `routes`, ready for `app.run(single_process=True)`; `windows`
    are the models' context windows its model list shows.

    Every request, whatever its path, passes `cross_site` before routing."""
    app: Sanic[Any, Any] = Sanic(APP_NAME, configure_logging=False)
    app.config.RESPONSE_TIMEOUT = _SANIC_RESPONSE_TIMEOUT
    app.config.GRACEFUL_SHUTDOWN_TIMEOUT = _GRACEFUL_SHUTDOWN_SECONDS
    # uvloop drops a signal that lands between two of the loop runs of Sanic's startup, so a
    # SIGTERM sent just after /healthz first answers could be lost; asyncio's loop keeps it.
    # Measured here, the relay costs the same per chunk on both.
    app.config.USE_UVLOOP = False
    endpoints = _Endpoints(build_backends(routes, settings), settings, windows or {})
    app.add_route(endpoints.chat_completions, "/v1/chat/completions", methods=["POST"])
    app.add_route(endpoints.list_models, "/v1/models", methods=["GET"])
    app.add_route(endpoints.get_model, "/v1/models/<model_id:path>", methods=["GET"])
    app.add_route(endpoints.healthz, HEALTH_PATH, methods=["GET"])
    app.add_route(endpoints.readyz, "/readyz", methods=["GET"])
    app.error_handler.add(Exception, endpoints.error_response)

    @app.before_server_start
    async def quiet_accept_failures(app: Sanic[Any, Any]) -> None:
        throttle_accept_errors(asyncio.get_running_loop())

    @app.on_request
    async def refuse_cross_site_and_keyless(request: Request) -> None:
        cross_site.check(request.method, request.headers)
        if request.path != HEALTH_PATH:
            keys.check(request.headers.get("authorization"))

    app.after_server_stop(endpoints.close)
    app.before_server_start(_stop_on_hangup)
    app.after_server_start(endpoints.report_readiness)
    return app


async def _stop_on_hangup(app: Sanic[Any, Any]) -> None:
    """A closed terminal (SIGHUP) stops the proxy as cleanly as SIGINT and SIGTERM do."""
    asyncio.get_running_loop().add_signal_handler(
        signal.SIGHUP, functools.partial(app.stop, terminate=False)
    )


class _Endpoints:
    """The request handlers, sharing the backends and the retry policy."""

    def __init__(
        self,
        backends: dict[str, tuple[Backend, ...]],
        settings: ProxySettings,
        windows: Mapping[str, int],
    ) -> None:
        self._backends = backends
        self._windows = windows
        self._policy = RetryPolicy(settings.max_retries)

    async def chat_completions(self, request: Request) -> HTTPResponse | None:
        """POST /v1/chat/completions."""
        body = parse_chat_request(request.body)
        backends = self._route(body["model"])
        if body.get("stream"):
            await self._stream(request, body, backends)
            return None
        started = time.perf_counter()
        answer, backend = await first_success(
            backends, lambda backend: backend.complete(body), self._policy
        )
        _log_answer(body["model"], backend, False, "done", started)
        return json_response(answer, dumps=json.dumps)

    async def list_models(self, request: Request) -> HTTPResponse:
        """GET /v1/models: every model name a route is configured for; behind a wildcard
        route, also the names its upstreams list."""
        names = [name for name in self._backends if name != WILDCARD]
        for backend in self._backends.get(WILDCARD, ()):
            if isinstance(backend, UpstreamBackend):
                names += [name for name in await backend.model_names() if name not in names]
        return json_response(
            {"object": "list", "data": [self._model_entry(name) for name in names]}
        )

    async def get_model(self, request: Request, model_id: str) -> HTTPResponse:
        """GET /v1/models/{id}."""
        self._route(model_id)
        return json_response(self._model_entry(model_id))

    async def healthz(self, request: Request) -> HTTPResponse:
        """GET /healthz: the server is up (upstreams are not probed: liveness stays cheap)."""
        return json_response({"status": "ok"})

    async def readyz(self, request: Request) -> HTTPResponse:
        """GET /readyz: every upstream answers and takes its key; 503 names what does not."""
        problems = await self._problems()
        status = 503 if problems else 200
        return json_response(
            {"status": "unready" if problems else "ready", "problems": problems}, status=status
        )

    async def report_readiness(self, app: Sanic[Any, Any]) -> None:
        """At start, say in the log which upstream cannot be reached or refuses its key: in
        the background, so a slow upstream holds up neither serving nor a prompt shutdown."""
        app.add_task(self._log_problems(), name="readiness report")

    async def _log_problems(self) -> None:
        for problem in await self._problems():
            logger.warning("upstream not ready", extra={"problem": problem})

    async def _problems(self) -> list[str]:
        upstreams = {
            backend.label: backend
            for backends in self._backends.values()
            for backend in backends
            if isinstance(backend, UpstreamBackend)
        }
        found = await asyncio.gather(*(backend.problem() for backend in upstreams.values()))
        return [problem for problem in found if problem]

    def error_response(self, request: Request, exception: Exception) -> HTTPResponse:
        """Every failure before a response started, in OpenAI's error shape."""
        error = _as_api_error(request, exception)
        if isinstance(error, REFUSALS):
            _refusals.warning(
                "request refused", path=request.path[:200], status=error.status, code=error.code
            )
            return json_response(error.body(), status=error.status)
        logger.log(
            logging.WARNING if isinstance(error, UpstreamError) else logging.INFO,
            "request answered with an error",
            extra={"path": request.path, "status": error.status, "code": error.code},
        )
        return json_response(error.body(), status=error.status, headers=error.headers())

    async def close(self, app: Sanic[Any, Any]) -> None:
        """Release every backend's connections."""
        closed: set[int] = set()
        for backends in self._backends.values():
            for backend in backends:
                if id(backend) not in closed:
                    closed.add(id(backend))
                    await backend.aclose()

    def _model_entry(self, name: str) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": name,
            "object": "model",
            "created": 0,
            "owned_by": "agent-service",
        }
        if name in self._windows:
            entry["context_window"] = self._windows[name]
        return entry

    def _route(self, model: str) -> tuple[Backend, ...]:
        backends = self._backends.get(model) or self._backends.get(WILDCARD)
        if backends is None:
            raise ModelNotFound(
                f"The model `{model}` does not exist or you do not have access to it.",
                param="model",
            )
        return backends

    async def _stream(
        self, request: Request, body: dict[str, Any], backends: Sequence[Backend]
    ) -> None:
        started = time.perf_counter()
        (first, frames), backend = await first_success(
            backends, lambda backend: open_stream(backend, body), self._policy
        )
        outcome = "client disconnected"
        try:
            async with contextlib.aclosing(frames):
                response = await request.respond(content_type=SSE_CONTENT_TYPE, headers=SSE_HEADERS)
                try:
                    await response.send(first)  # the headers go with it: chunked, always
                    async for frame in frames:
                        await response.send(frame, _ends_answer(frame))
                    outcome = "done"
                except ApiError as exc:
                    outcome = exc.code
                    await response.send(sse_frame(exc.body()))
                except Exception as exc:
                    logger.exception("stream relay failed", extra={"model": body["model"]})
                    outcome = "internal_error"
                    await response.send(sse_frame(ApiError(f"the proxy failed: {exc}").body()))
                await response.eof()
        finally:
            _log_answer(body["model"], backend, True, outcome, started)


def _ends_answer(frames: bytes) -> bool | None:
    """True when these frames end with `[DONE]`: the end of the body goes in the same write,
    so the caller reads the whole answer, ready to reuse its connection, with one read."""
    return True if frames.endswith(DONE_FRAME) else None


def _as_api_error(request: Request, exception: Exception) -> ApiError:
    if isinstance(exception, ApiError):
        return exception
    if isinstance(exception, NotFound):
        return UnknownUrl(f"Unknown request URL: {request.method} {request.path}.")
    if isinstance(exception, MethodNotAllowed):
        error = InvalidRequest(f"Method {request.method} is not allowed on {request.path}.")
        error.status = 405
        return error
    if isinstance(exception, SanicException):
        error = InvalidRequest(str(exception))
        error.status = exception.status_code
        return error
    logger.error("request failed", exc_info=exception, extra={"path": request.path})
    return ApiError("The proxy failed to handle the request.")


def _log_answer(model: str, backend: Backend, stream: bool, outcome: str, started: float) -> None:
    logger.info(
        "chat completion",
        extra={
            "model": model,
            "backend": backend.label,
            "stream": stream,
            "outcome": outcome,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )
