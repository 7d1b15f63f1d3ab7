"""The numbered events a session keeps for resume: the newest ones, bounded in characters.

A session that streams a huge answer must not hold it twice for its whole life:
once the kept events pass `max_chars`, the oldest are dropped. A client that
resumes from before a dropped event gets `resume_gap` instead of a silent hole.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

DEFAULT_MAX_CHARS = 16 * 1024 * 1024


class EventHistory:
    """(seq, wire text) of the newest events, in seq order; seqs may skip after a crash."""

    def __init__(self, max_chars: int = DEFAULT_MAX_CHARS) -> None:
        self.max_chars = max_chars
        self.chars = 0
        self.dropped_through = 0
        self._events: deque[tuple[int, str]] = deque()

    def append(self, seq: int, text: str) -> None:
        """Keep one event; drop the oldest while over the budget (the new one included)."""
        events = self._events
        events.append((seq, text))
        self.chars += len(text)
        while self.chars > self.max_chars and events:
            dropped, dropped_text = events.popleft()
            self.chars -= len(dropped_text)
            self.dropped_through = dropped

    def after(self, seq: int) -> Iterator[str]:
        """The kept events numbered above `seq`, in order."""
        for number, text in self._events:
            if number > seq:
                yield text

    def missing_after(self, seq: int) -> bool:
        """Whether an event numbered above `seq` was dropped: a resume from `seq` has a hole."""
        return seq < self.dropped_through
