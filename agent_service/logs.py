"""Structured logs: one JSON object per line on stderr, never a token or a key."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record and its `extra=` fields as one JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every logger of the process to stderr as JSON lines tagged with `service`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(_ServiceTag(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in (
        "websockets",
        "httpx",
        "httpx2",
        "httpcore",
        "openai",
        "transitions",
        "sanic.access",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.Formatter.converter = time.gmtime


class _ServiceTag(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        return True


class ThrottledLog:
    """Logs one kind of event at most `burst` times per `window_s`: a flood of unauthenticated
    requests, or of accepts the process has no descriptor for, must not flood the log.

    The first line after a quiet window says how many were left out (`suppressed`).
    """

    def __init__(
        self,
        logger: logging.Logger,
        burst: int = 5,
        window_s: float = 10.0,
        clock: Any = time.monotonic,
    ) -> None:
        self._logger = logger
        self._burst = burst
        self._window_s = window_s
        self._clock = clock
        self._window_start = -window_s
        self._logged = 0
        self._suppressed = 0

    def warning(self, message: str, **fields: Any) -> None:
        """Log `message` with `fields` unless this window's lines are used up."""
        now = self._clock()
        if now - self._window_start >= self._window_s:
            if self._suppressed:
                fields["suppressed"] = self._suppressed
            self._window_start, self._logged, self._suppressed = now, 0, 0
        if self._logged >= self._burst:
            self._suppressed += 1
            return
        self._logged += 1
        self._logger.warning(message, extra=fields)


_accept_failures = ThrottledLog(logging.getLogger("asyncio.accept"))


def throttle_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Out of file descriptors, asyncio logs an error with a traceback for every accept it
    retries (hundreds a second under a burst); log that at most `ThrottledLog`'s rate."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith("socket.accept() out of system resource"):
            _accept_failures.warning(
                "out of file descriptors: new connections wait",
                reason=str(context.get("exception")),
            )
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handle)
