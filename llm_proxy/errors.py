"""Errors of the proxy: each one knows the HTTP status and OpenAI error body a client gets.

`ApiError` and its subclasses are what a caller sees, as a status with
`{"error": {"message", "type", "param", "code"}}` before a stream starts, or as
one `data: {"error": {...}}` event once it has. `retryable` and `fallback` tell
the failover loop what a failure before the first byte is worth: another try
at the same upstream, or a move to the route's next one.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from wire import AgentServiceError

# Upstream headers a client needs to act on a rate limit or trace a failure.
_PASSED_HEADERS = ("retry-after", "retry-after-ms", "x-request-id")
_PASSED_PREFIX = "x-ratelimit-"


class ProxyError(AgentServiceError):
    """Root of every error raised by llm_proxy."""


class RoutesError(ProxyError):
    """The routing configuration cannot be used; the message names the entry and the fix."""


class ReplaySourceError(ProxyError):
    """The transcript to replay cannot be read; the message names the file and the problem."""


class ApiError(ProxyError):
    """A failure reported to the API client in OpenAI's error shape."""

    status = 500
    type = "server_error"
    code = "internal_error"
    retryable = False
    fallback = False

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after: float | None = None

    def body(self) -> dict[str, Any]:
        """The JSON body (or stream event) the client receives."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def headers(self) -> dict[str, str]:
        """Extra response headers, e.g. an upstream's Retry-After."""
        return {}


class InvalidRequest(ApiError):
    """The request body is not a chat completion request the proxy can serve."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class InvalidJson(InvalidRequest):
    """The request body is not JSON the proxy can read (nested too deeply, for one)."""

    code = "invalid_json"


class InvalidProxyKey(ApiError):
    """The caller presented no proxy key, or a wrong one."""

    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class ModelNotFound(ApiError):
    """No route is configured for the requested model."""

    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class UnknownUrl(ApiError):
    """No endpoint at this method and path."""

    status = 404
    type = "invalid_request_error"
    code = "unknown_url"


class ReplayMismatch(ApiError):
    """The request equals no recorded request of the replayed session; the message says where
    it differs from the nearest one."""

    status = 409
    type = "invalid_request_error"
    code = "replay_mismatch"


class ReplayedFailure(ApiError):
    """A model failure as the replayed session recorded it, with the status it came with."""

    type = "upstream_error"

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class UpstreamError(ApiError):
    """The upstream failed; the proxy could not get a usable answer from it."""

    status = 502
    type = "upstream_error"
    code = "upstream_error"


class UpstreamUnavailable(UpstreamError):
    """The upstream could not be reached, or dropped the connection before answering."""

    code = "upstream_unavailable"
    retryable = True
    fallback = True


class UpstreamTimeout(UpstreamError):
    """The upstream sent nothing in time: no first byte, or no chunk for too long."""

    status = 504
    code = "upstream_timeout"
    fallback = True


class UpstreamBadResponse(UpstreamError):
    """The upstream answered with something that is not OpenAI's wire format."""

    code = "upstream_bad_response"
    fallback = True


class UpstreamTruncated(UpstreamError):
    """The upstream's stream broke off after it started, before `[DONE]`."""

    code = "upstream_truncated"


class UpstreamAuthFailed(UpstreamError):
    """The upstream refused the proxy's own credentials (its 401/403, not the caller's)."""

    code = "upstream_auth"
    fallback = True


class UpstreamStatus(UpstreamError):
    """An upstream error status passed through to the caller with its body and rate-limit headers."""

    code = "upstream_status"

    def __init__(self, status: int, body: dict[str, Any], headers: Mapping[str, str]) -> None:
        error = body.get("error")
        message = error.get("message") if isinstance(error, dict) else None
        super().__init__(str(message or f"upstream answered HTTP {status}"))
        self.status = status
        self._body = body
        self._headers = {
            name: value
            for name, value in headers.items()
            if name in _PASSED_HEADERS or name.startswith(_PASSED_PREFIX)
        }
        self.retryable = self.fallback = status in (408, 429) or status >= 500
        self.retry_after = _retry_after_seconds(headers)

    def body(self) -> dict[str, Any]:
        return self._body

    def headers(self) -> dict[str, str]:
        return self._headers


def upstream_status_error(status: int, content: bytes, headers: Mapping[str, str]) -> UpstreamError:
    """The error for an upstream's non-2xx answer; `headers` must have lower-case names.

    Its own 401/403 means the proxy's key for it is wrong, which the caller cannot fix,
    so that becomes a 502. Every other status passes through, with its body kept when it is
    already in OpenAI's error shape and wrapped in that shape when it is not.
    """
    if status in (401, 403):
        return UpstreamAuthFailed(
            f"the upstream refused the proxy's credentials for it (HTTP {status}); "
            "check the API key configured for this route"
        )
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):
        body = None
    if not (isinstance(body, dict) and isinstance(body.get("error"), dict)):
        text = content.decode("utf-8", "replace").strip()[:500]
        message = f"upstream answered HTTP {status}" + (f": {text}" if text else "")
        body = {
            "error": {
                "message": message,
                "type": "upstream_error",
                "param": None,
                "code": "upstream_status",
            }
        }
    return UpstreamStatus(status, body, headers)


def _retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """How long the upstream asked to wait: retry-after-ms, else Retry-After (seconds or date)."""
    milliseconds = headers.get("retry-after-ms")
    value = headers.get("retry-after")
    with contextlib.suppress(ValueError):
        if milliseconds is not None:
            return max(0.0, float(milliseconds) / 1000)
        if value is not None:
            return max(0.0, float(value))
    if value is not None:
        with contextlib.suppress(TypeError, ValueError):
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    return None
