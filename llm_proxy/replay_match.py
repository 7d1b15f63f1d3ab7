"""Finds the recorded request a live request equals, or says where it differs from the nearest.

Two requests are equal when their `messages` and `tools` are equal as JSON
(numbers by type, strings character for character, key order ignored). No field
is volatile: the orchestrator builds a conversation only from the session's own
inputs (ids are counters), so a re-run of the same session sends the same
requests, and anything else is a difference worth seeing. Every other field of
the request (`model`, `stream`, `stream_options`, sampling settings) is not
compared.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llm_proxy.transcript_reader import RecordedExchange, RecordedSession

SHOWN_CHARS = 60
CONTEXT_CHARS = 20
_VISIBLE_CONTROLS = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": "\\t"})


@dataclass(frozen=True, slots=True)
class Difference:
    """Where two JSON values first differ (`messages[3].content`) and how."""

    path: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.detail}"


class RecordedRequests:
    """The recorded exchanges of a session, looked up by their request."""

    def __init__(self, session: RecordedSession) -> None:
        self.session = session
        self._by_key: dict[str, RecordedExchange] = {}
        for exchange in session.exchanges:
            self._by_key.setdefault(_key(exchange.messages, exchange.tools), exchange)

    def find(self, request: dict[str, Any]) -> RecordedExchange | None:
        """The recorded exchange whose request equals this one, if any."""
        return self._by_key.get(_key(request.get("messages"), request.get("tools")))

    def explain_miss(self, request: dict[str, Any]) -> tuple[RecordedExchange, Difference] | None:
        """The nearest recorded exchange and the first difference from it (None: none recorded).

        Nearest: the most leading messages in common, then the same number of messages,
        then the earliest.
        """
        messages, tools = request.get("messages"), request.get("tools")
        if not self.session.exchanges:
            return None
        nearest = max(
            self.session.exchanges,
            key=lambda exchange: (
                _common_prefix(exchange.messages, messages),
                isinstance(messages, list) and len(messages) == len(exchange.messages),
            ),
        )
        difference = first_difference(nearest.messages, messages, "messages") or first_difference(
            nearest.tools, tools, "tools"
        )
        assert difference is not None, "a request equal to a recorded one is found by `find`"
        return nearest, difference


def first_difference(expected: Any, got: Any, path: str) -> Difference | None:
    """The first place where `got` differs from the recorded `expected`; None when equal."""
    if isinstance(expected, dict) and isinstance(got, dict):
        for key, value in expected.items():
            if key not in got:
                return Difference(f"{path}.{key}", f"missing (recorded {_shown(value)})")
            found = first_difference(value, got[key], f"{path}.{key}")
            if found is not None:
                return found
        extra = next((key for key in got if key not in expected), None)
        if extra is not None:
            return Difference(f"{path}.{extra}", f"not in the recording (got {_shown(got[extra])})")
        return None
    if isinstance(expected, list) and isinstance(got, list):
        for index, (recorded, sent) in enumerate(zip(expected, got, strict=False)):
            found = first_difference(recorded, sent, f"{path}[{index}]")
            if found is not None:
                return found
        if len(got) > len(expected):
            return Difference(
                f"{path}[{len(expected)}]",
                f"not in the recording, which has {len(expected)} items (got {_shown(got[len(expected)])})",
            )
        if len(got) < len(expected):
            return Difference(
                f"{path}[{len(got)}]",
                f"missing: the request has {len(got)} items (recorded {_shown(expected[len(got)])})",
            )
        return None
    if type(expected) is type(got) and expected == got:
        return None
    if isinstance(expected, str) and isinstance(got, str):
        at = next(
            (i for i, (a, b) in enumerate(zip(expected, got, strict=False)) if a != b),
            min(len(expected), len(got)),
        )
        return Difference(
            path,
            f"expected {_excerpt(expected, at)} got {_excerpt(got, at)} (first difference at "
            f"character {at})",
        )
    return Difference(path, f"expected {_shown(expected)} got {_shown(got)}")


def _key(messages: Any, tools: Any) -> str:
    return json.dumps([messages, tools], sort_keys=True, separators=(",", ":"))


def _common_prefix(recorded: Sequence[Any], messages: Any) -> int:
    if not isinstance(messages, list):
        return 0
    count = 0
    for mine, theirs in zip(recorded, messages, strict=False):
        if mine != theirs:
            break
        count += 1
    return count


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"


def _excerpt(text: str, at: int) -> str:
    """The part of `text` around character `at`, quoted, with … where it is cut.

    Only line breaks and tabs are escaped: a tool output quoted inside a message is
    already JSON text, and escaping it again would make it hard to read.
    """
    start = max(0, at - CONTEXT_CHARS)
    end = start + SHOWN_CHARS
    shown = text[start:end].translate(_VISIBLE_CONTROLS)
    return ("…" if start else "") + f'"{shown}"' + ("…" if end < len(text) else "")
