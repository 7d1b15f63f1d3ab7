"""The stack's only retry loop: backoff and fallbacks across a route, before the first byte.

A failure that is `retryable` (unreachable upstream, 429, 5xx) is tried again on
the same backend after an exponential backoff with jitter, or after exactly the
Retry-After the upstream asked for. When a backend's tries are used up, or its
failure is not worth a retry (a timeout, a bad answer, refused credentials) but
is worth a `fallback`, the route's next backend is tried. Anything else (a 400
from the upstream) goes straight back to the caller. Once a stream has yielded
its first frame this loop is over: nothing is ever retried mid-stream.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from llm_proxy.backend import Backend
from llm_proxy.errors import ApiError, UpstreamTruncated

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how long to wait before trying a backend again."""

    max_retries: int
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 30.0

    def delay(self, retry: int, retry_after: float | None) -> float | None:
        """Seconds to wait before retry number `retry` (from 0); None: do not retry.

        An upstream's Retry-After is honoured as given, unless it asks for longer
        than `max_retry_after`: then its error goes back to the caller at once.
        """
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        return min(self.max_delay, self.base_delay * 2.0**retry) * random.uniform(0.5, 1.0)


async def first_success(
    backends: Sequence[Backend],
    attempt: Callable[[Backend], Awaitable[T]],
    policy: RetryPolicy,
) -> tuple[T, Backend]:
    """The first result of `attempt` over the backends, with retries; raises the last failure."""
    error = ApiError("no backend is configured for this model")
    for backend in backends:
        for retry in range(policy.max_retries + 1):
            try:
                return await attempt(backend), backend
            except ApiError as exc:
                error = exc
            delay = policy.delay(retry, error.retry_after) if error.retryable else None
            if retry == policy.max_retries:
                delay = None
            logger.warning(
                "upstream attempt failed",
                extra={
                    "backend": backend.label,
                    "code": error.code,
                    "status": error.status,
                    "detail": error.message,
                    "attempt": retry + 1,
                    "retry_in": None if delay is None else round(delay, 3),
                },
            )
            if delay is None:
                break
            await asyncio.sleep(delay)
        if not error.fallback:
            raise error
    raise error


async def open_stream(
    backend: Backend, request: dict[str, Any]
) -> tuple[bytes, AsyncGenerator[bytes, None]]:
    """Start `backend`'s stream and wait for its first frame: the point of no return."""
    frames = backend.stream(request)
    try:
        first = await anext(frames)
    except StopAsyncIteration:
        raise UpstreamTruncated("the backend ended its stream without a single frame") from None
    return first, frames
