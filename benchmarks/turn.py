"""One measured turn, and the session interface every path under test offers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from benchmarks.directive import Directive
from benchmarks.stamps import read_stamps

NS_PER_MS = 1_000_000


@dataclass(slots=True)
class Turn:
    """When a turn was asked for, and when each of its tokens was written and received."""

    sent_ns: int
    emitted_ns: list[int] = field(default_factory=list)
    received_ns: list[int] = field(default_factory=list)
    frames: int = 0
    tool_call_ns: int | None = None

    def add(self, text: str, received_ns: int) -> None:
        """A frame carrying `text` arrived at `received_ns`; frames without tokens don't count."""
        stamps = read_stamps(text)
        if stamps:
            self.frames += 1
            self.emitted_ns.extend(stamps)
            self.received_ns.extend([received_ns] * len(stamps))

    @property
    def tokens(self) -> int:
        """Tokens received."""
        return len(self.emitted_ns)

    def first_token_ms(self) -> float:
        """From asking to the first token's receipt."""
        return (self.received_ns[0] - self.sent_ns) / NS_PER_MS

    def token_latencies_ms(self) -> list[float]:
        """For each token, from its emission upstream to its receipt here."""
        return [
            (received - emitted) / NS_PER_MS
            for emitted, received in zip(self.emitted_ns, self.received_ns, strict=True)
        ]

    def token_latencies_between_ms(self, start_ns: int, end_ns: int) -> list[float]:
        """The latencies of the tokens emitted from `start_ns` to `end_ns`."""
        return [
            (received - emitted) / NS_PER_MS
            for emitted, received in zip(self.emitted_ns, self.received_ns, strict=True)
            if start_ns <= emitted <= end_ns
        ]

    def emission_lag_ms(self, rate: float) -> list[float]:
        """How much later than `rate` promises each token was emitted: the upstream was starved."""
        first = self.emitted_ns[0]
        return [
            (emitted - first) / NS_PER_MS - index * 1000 / rate
            for index, emitted in enumerate(self.emitted_ns)
        ]

    def tokens_per_s(self) -> float:
        """Tokens over the time from asking to the last token's receipt."""
        return self.tokens * 1e9 / (self.received_ns[-1] - self.sent_ns)

    def tool_call_ms(self) -> float:
        """From asking to the tool call's receipt."""
        assert self.tool_call_ns is not None, "the turn had no tool call"
        return (self.tool_call_ns - self.sent_ns) / NS_PER_MS

    def tool_round_trip_ms(self) -> float:
        """From the tool call's receipt (answered at once) to the first token after it."""
        assert self.tool_call_ns is not None, "the turn had no tool call"
        return (self.received_ns[0] - self.tool_call_ns) / NS_PER_MS


class BenchSession(Protocol):
    """One client of a path under test: a conversation it can run turns on."""

    async def turn(self, directive: Directive) -> Turn:
        """Ask for the directive's answer; answer a tool call at once; return when it is done."""

    async def close(self) -> None:
        """Hang up."""
