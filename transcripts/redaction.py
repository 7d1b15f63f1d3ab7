"""Redaction at the storage boundary: secrets in payloads become `[REDACTED]` before they are written.

Patterns run over each row's stored JSON text, not over the decoded strings:
that keeps redaction to one regex pass per row. In that text a newline is the
two characters `\\n`, a tab `\\t`, and every non-ASCII character a `\\uXXXX`
escape; a tool output quoted inside a model request is escaped twice. Anchor a
pattern with `starts_token(prefix)` instead of `\\b` to match after those too.

All patterns are joined into one regex. Begin each with a literal character:
the regex engine then skips straight to where a key can start (about 1 us
for a streamed chunk's row); one pattern that begins with a class or a group
makes every row several times slower. Patterns cannot use backreferences.

A replacement never breaks the JSON: should a pattern reach across a string's
closing quote, that row is redacted string by string instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from transcripts.errors import BadRedactionPattern

REDACTED = "[REDACTED]"
_IN_STRING = r'(?:[^"\\]|\\.)'
"""One character of a JSON string's text, an escape pair counting as one."""


def starts_token(prefix: str) -> str:
    """`prefix`, a fixed-width regex, only where a token starts: like `\\b` before it, and also
    right after a JSON escape such as `\\n` or `\\u00e9`.

    The check comes after the prefix so the pattern still begins with a literal: the combined
    regex then jumps straight to the characters a key can start with.
    """
    return (
        f"{prefix}(?:(?<=[^A-Za-z0-9_]{prefix})|(?<=\\\\[nrtbf]{prefix})"
        f"|(?<=\\\\u[0-9a-fA-F]{{4}}{prefix}))"
    )


def _either(prefixes: Iterable[str], rest: str) -> str:
    return "|".join(starts_token(prefix) + rest for prefix in prefixes)


DEFAULT_PATTERNS: dict[str, str] = {
    "openai_style_key": starts_token("sk-") + r"[A-Za-z0-9_-]{20,}",
    "aws_access_key_id": _either(("AKIA", "ASIA"), r"[0-9A-Z]{16}(?![0-9A-Za-z])"),
    "github_token": starts_token("gh")
    + r"[pousr]_[A-Za-z0-9]{36,}|"
    + starts_token("github_pat_")
    + r"[A-Za-z0-9_]{22,}",
    "slack_token": starts_token("xox") + r"[abposr]-[A-Za-z0-9-]{10,}",
    "google_api_key": starts_token("AIza") + r"[0-9A-Za-z_-]{35}",
    "bearer_token": _either(("Bearer", "bearer", "BEARER"), r"(?: |\\t)+[A-Za-z0-9._~+/-]{8,}=*"),
    "jwt": starts_token("eyJ") + r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
    "private_key_block": (
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----" + _IN_STRING + r"*?-----END [A-Z ]*PRIVATE KEY-----"
    ),
}
"""Common key shapes, by name; `Redactor.default()` uses them all."""


class Redactor:
    """Replaces every match of its patterns in a payload's JSON text with `[REDACTED]`."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns: tuple[str, ...] = tuple(patterns)
        for pattern in self.patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise BadRedactionPattern(f"redaction pattern {pattern!r}: {exc}") from None
        try:
            self._regex = re.compile("|".join(self.patterns)) if self.patterns else None
        except re.error as exc:
            raise BadRedactionPattern(
                f"redaction patterns cannot be combined ({exc}); write flags inline, "
                "scoped to their group, as in (?i:bearer)"
            ) from None

    @classmethod
    def default(cls, extra: Iterable[str] = ()) -> Redactor:
        """The default key shapes, plus `extra` patterns."""
        return cls([*DEFAULT_PATTERNS.values(), *extra])

    def redact(self, payload: str) -> tuple[str, int]:
        """`payload` with its secrets replaced, and how many were replaced."""
        if self._regex is None:
            return payload, 0
        redacted, count = self._regex.subn(REDACTED, payload)
        if count == 0:
            return payload, 0
        try:
            json.loads(redacted)
        except ValueError:
            return self._redact_strings(payload)
        return redacted, count

    def _redact_strings(self, payload: str) -> tuple[str, int]:
        """Slow path: redact each decoded string on its own, so the JSON stays whole."""
        assert self._regex is not None
        regex = self._regex
        count = 0

        def walk(value: Any) -> Any:
            nonlocal count
            if isinstance(value, str):
                value, found = regex.subn(REDACTED, value)
                count += found
                return value
            if isinstance(value, list):
                return [walk(item) for item in value]
            if isinstance(value, dict):
                return {walk(key): walk(item) for key, item in value.items()}
            return value

        cleaned = walk(json.loads(payload))
        return json.dumps(cleaned, separators=(",", ":")), count
