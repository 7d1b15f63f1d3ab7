"""Structured logs on stderr: readable lines on a terminal, one JSON object a line otherwise.

Every record carries its `extra=` fields; times are ISO-8601 in UTC. The format and
level come from --log-format / --log-level (env AGENT_LOG_FORMAT / AGENT_LOG_LEVEL),
which the command line exports so that child processes log the same way. Callers
never pass tokens or keys in a record.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = [
    "ThrottledLog",
    "add_logging_flags",
    "configure_logging",
    "export_logging_flags",
    "throttle_accept_errors",
]

LEVEL_VAR = "AGENT_LOG_LEVEL"
FORMAT_VAR = "AGENT_LOG_FORMAT"
FORMATS = ("auto", "text", "json")
LEVELS = ("debug", "info", "warning", "error")

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
_NOISY = ("websockets", "httpx", "httpx2", "httpcore", "openai", "transitions", "sanic.access")
_COLOURS = {"debug": "\x1b[2m", "info": "\x1b[36m", "warning": "\x1b[33m", "error": "\x1b[31m"}
_RESET = "\x1b[0m"


def iso_time(created: float) -> str:
    """A record's time as ISO-8601 UTC with milliseconds."""
    moment = datetime.fromtimestamp(created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD and not key.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    """A record and its `extra=` fields as one JSON object, for machines."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": iso_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """`time level service: message key=value ...`, coloured by level when asked, for people."""

    def __init__(self, colour: bool) -> None:
        super().__init__()
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        service = fields.pop("service", record.name)
        level = record.levelname.lower()
        shown = f"{level:<7}"
        if self.colour:
            shown = f"{_COLOURS.get(level, '')}{shown}{_RESET}"
        extras = " ".join(f"{key}={_short(value)}" for key, value in fields.items())
        line = f"{iso_time(record.created)} {shown} {service}: {record.getMessage()}"
        if extras:
            line += f"  {extras}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return json.dumps(text) if (" " in text or not text) else text


def add_logging_flags(parser: argparse.ArgumentParser) -> None:
    """--log-level and --log-format, shared by every command."""
    parser.add_argument(
        "--log-level",
        choices=LEVELS,
        type=str.lower,
        default=os.environ.get(LEVEL_VAR),
        help=f"least severe level logged (env {LEVEL_VAR}; default info, warning for `ide`)",
    )
    parser.add_argument(
        "--log-format",
        choices=FORMATS,
        type=str.lower,
        default=os.environ.get(FORMAT_VAR) or "auto",
        help=f"text for people, json for machines, auto: text on a terminal (env {FORMAT_VAR}, "
        "default %(default)s)",
    )


def export_logging_flags(args: argparse.Namespace) -> None:
    """Make the flags the process tree's settings: `configure_logging` and children read them."""
    if getattr(args, "log_level", None):
        os.environ[LEVEL_VAR] = args.log_level
    if getattr(args, "log_format", None):
        os.environ[FORMAT_VAR] = args.log_format


def configure_logging(service: str, level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send every logger of the process to stderr, tagged with `service`, in the chosen format."""
    out = stream or sys.stderr
    handler = logging.StreamHandler(out)
    handler.setFormatter(_formatter(out))
    handler.addFilter(_ServiceTag(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((os.environ.get(LEVEL_VAR) or level).upper())
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Sanic advises its own --debug/--dev flags on a terminal; our commands have none.
    os.environ.setdefault("SANIC_IGNORE_PRODUCTION_WARNING", "1")


def _formatter(out: TextIO) -> logging.Formatter:
    chosen = os.environ.get(FORMAT_VAR) or "auto"
    terminal = out.isatty()
    if chosen == "json" or (chosen == "auto" and not terminal):
        return JsonFormatter()
    return TextFormatter(colour=terminal and not os.environ.get("NO_COLOR"))


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
