"""A session's rows decoded and grouped: each input event with the commands the core answered."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from orchestrator import Command, Event, RejectEvent, decode_command, decode_event
from transcripts.store import INPUT, EventRecord


@dataclass(slots=True)
class Exchange:
    """One input, when it was recorded, and the outputs recorded after it (all at one time)."""

    event: Event
    at: float
    outputs: list[Command] = field(default_factory=list)
    outputs_at: float = 0.0

    @property
    def rejected(self) -> bool:
        """The core refused the input: nothing changed."""
        return any(isinstance(command, RejectEvent) for command in self.outputs)


def exchanges(rows: Iterable[EventRecord]) -> Iterator[Exchange]:
    """The rows as exchanges, in seq order; raises `CodecError` on a row that does not decode."""
    current: Exchange | None = None
    for row in rows:
        if row.kind == INPUT:
            if current is not None:
                yield current
            current = Exchange(decode_event(row.payload), row.recorded_at)
            current.outputs_at = row.recorded_at
        elif current is not None:
            current.outputs.append(decode_command(row.payload))
            current.outputs_at = row.recorded_at
    if current is not None:
        yield current
