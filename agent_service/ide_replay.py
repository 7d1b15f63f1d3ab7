"""Live replay, the IDE's side: a recorded session's messages and tool results sent again
through the live services, and every event that comes back checked against the recording.

The recording gives the user messages the session accepted (sent one turn at a
time, each once the previous turn has come to rest), the tool results it
accepted (looked up by call id; a call the recording never answered, because its
tool timed out, is left unanswered again) and every numbered event it emitted.
Client inputs the session refused (a message while busy, a late result) changed
nothing and are not sent. A session its user cancelled is refused: where a
cancel lands in a live stream cannot be reproduced; so is one whose user decided on
approvals, changed the mode, steered or reverted files (the reference IDE declares none
of that; `replay --verify` checks such a session offline).

Events are compared in order, field by field, after dropping `VOLATILE_FIELDS`
and `seq`, with each run of text deltas taken as one (see `EventCheck`); the
first difference stops the replay.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from ide_client import IdeClient, ReplayCode, ReplayError
from orchestrator import (
    ApprovalAnswered,
    ApprovalModeSet,
    CancelRequested,
    Command,
    EmitEvent,
    Event,
    FilesRevertedByUser,
    RejectEvent,
    ToolResultReceived,
    UserMessageReceived,
    check_version,
    decode_command,
    decode_config,
    decode_event,
)
from transcripts import INPUT, TranscriptStore
from wire import (
    ApprovalMode,
    Error,
    NumberedEvent,
    ServerMessage,
    ToolCall,
    ToolError,
    ToolResult,
)

_USER_IN_CONTROL = (ApprovalAnswered, ApprovalModeSet, FilesRevertedByUser)
# Fields that differ between a session and its live re-run by design: the re-run is a new session.
VOLATILE_FIELDS = frozenset({"session_id"})
SHOWN_CHARS = 400
_VISIBLE_CONTROLS = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": "\\t"})


@dataclass(frozen=True, slots=True)
class IdeRecording:
    """What the IDE needs from a recorded session to live it again."""

    session_id: str
    messages: tuple[str, ...]
    results: dict[str, ToolResult]
    events: tuple[NumberedEvent, ...]
    tools: tuple[str, ...]
    """The tools the recorded session offered: the live re-run declares the same ones."""


def read_ide_recording(store: TranscriptStore, session_id: str) -> IdeRecording:
    """The session's accepted messages and tool results and its events.

    Raises TranscriptError or CodecError when it cannot be read, ReplayError when
    the session was cancelled.
    """
    session = store.session(session_id)
    check_version(session.codec_version)
    messages: list[str] = []
    results: dict[str, ToolResult] = {}
    events: list[NumberedEvent] = []
    steps: list[tuple[int, Event, list[Command]]] = []
    for row in store.events(session_id):
        if row.kind == INPUT:
            steps.append((row.seq, decode_event(row.payload), []))
        elif steps:
            steps[-1][2].append(decode_command(row.payload))
    for seq, event, outputs in steps:
        events.extend(out.event for out in outputs if isinstance(out, EmitEvent))
        if any(isinstance(out, RejectEvent) for out in outputs):
            continue
        if isinstance(event, UserMessageReceived):
            messages.append(event.content)
        elif isinstance(event, ToolResultReceived):
            results[event.call_id] = _tool_result(event)
        elif isinstance(event, CancelRequested):
            raise ReplayError(
                ReplayCode.UNSUPPORTED,
                f"session {session_id} was cancelled by its user (row seq {seq}); a cancel cannot "
                "land at the same point of a live stream again. `agent-service replay "
                f"{session_id} --verify` checks the session offline",
            )
    config = decode_config(session.config)
    controlled = [e for _, e, _ in steps if isinstance(e, _USER_IN_CONTROL)]
    if config.features or config.approval != ApprovalMode.AUTO_EDIT or controlled:
        raise ReplayError(
            ReplayCode.UNSUPPORTED,
            f"session {session_id} used approvals, steering or reverts, which a live re-run "
            f"cannot decide the same way; `agent-service replay {session_id} --verify` checks "
            "the session offline",
        )
    return IdeRecording(session_id, tuple(messages), results, tuple(events), config.tools)


class RecordedTools:
    """Answers each tool call with the result the recording has for its call id."""

    def __init__(self, recording: IdeRecording) -> None:
        self._results = recording.results

    def answer(self, call: ToolCall) -> ToolResult | None:
        """The recorded result; None (no answer) for a call the recording never answered."""
        return self._results.get(call.call_id)


class EventCheck:
    """Compares the live numbered events with the recorded ones, in order.

    A run of `agent_delta`s is compared as one event with the run's text: the protocol lets
    the orchestrator merge text that arrived together, so how a stream splits into
    deltas (and therefore each later `seq`) depends on timing, not on the session.
    """

    def __init__(self, recording: IdeRecording) -> None:
        self._expected = _text_merged([_comparable(event) for event in recording.events])
        self._delta: dict[str, Any] | None = None
        self._next = 0
        self.matched = 0
        """Recorded events matched so far (a run of deltas counts as all of its events)."""

    def __call__(self, frame: ServerMessage) -> None:
        """Check one live event; raises ReplayError (`replay_diverged`) at a difference."""
        got = _comparable(frame)
        if got.get("type") == "agent_delta":
            if self._delta is None:
                self._delta = got
            else:
                self._delta["text"] += got["text"]
            return
        self._check_delta()
        self._check(got)

    def finish(self) -> None:
        """After the last turn: every recorded event must have come."""
        self._check_delta()
        if self._next < len(self._expected):
            missing = sum(count for _, count in self._expected[self._next :])
            first, _ = self._expected[self._next]
            raise _diverged(
                f"at event {self.matched + 1}: the recording has {missing} more events, which "
                f"the live session did not send; the first:\n  expected {_shown(first)}"
            )

    def _check_delta(self) -> None:
        if self._delta is not None:
            delta, self._delta = self._delta, None
            self._check(delta)

    def _check(self, got: dict[str, Any]) -> None:
        if self._next == len(self._expected):
            raise _diverged(
                f"at event {self.matched + 1}: the live session sent an event the recording "
                f"does not have\n  got {_shown(got)}"
            )
        expected, count = self._expected[self._next]
        if {**got, "seq": expected["seq"]} != expected:
            raise _diverged(
                f"at event {self.matched + 1} (recorded seq {expected['seq']}):\n"
                f"{_field_differences(expected, {**got, 'seq': expected['seq']})}"
            )
        self._next += 1
        self.matched += count


def _text_merged(events: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
    """The events with each run of `agent_delta`s as one; each with how many it stands for."""
    merged: list[tuple[dict[str, Any], int]] = []
    for event in events:
        if merged and merged[-1][0]["type"] == event["type"] == "agent_delta":
            previous, count = merged[-1]
            previous["text"] += event["text"]
            merged[-1] = (previous, count + 1)
        else:
            merged.append((dict(event), 1))
    return merged


async def replay_turns(
    client: IdeClient, recording: IdeRecording, check: EventCheck, turn_timeout: float
) -> None:
    """Send the recorded messages one turn at a time, then check that no event is missing.

    `client` must be connected, answer with `RecordedTools` and report to `check`.
    """
    for number, content in enumerate(recording.messages, start=1):
        try:
            async with asyncio.timeout(turn_timeout):
                turn = await client.run_turn(content)
        except TimeoutError:
            raise _diverged(
                f"turn {number} did not come to rest within {turn_timeout:g} s (the last event "
                f"received was seq {client.last_seq})"
            ) from None
        if turn.state is None:
            refusals = [frame.message for frame in turn.of_type(Error)]
            raise _diverged(f"the gateway refused message {number}: {'; '.join(refusals)}")
    check.finish()


def _tool_result(event: ToolResultReceived) -> ToolResult:
    """The `tool_result` frame the gateway turned into this event."""
    error = None
    if event.error_code is not None and event.error_message is not None:
        error = ToolError(
            code=event.error_code, message=event.error_message, details=event.error_details
        )
    return ToolResult(
        call_id=event.call_id, ok=event.ok, output=event.output, error=error, id=event.message_id
    )


def _comparable(frame: ServerMessage) -> dict[str, Any]:
    fields = frame.model_dump(mode="json")
    return {name: value for name, value in fields.items() if name not in VOLATILE_FIELDS}


def _field_differences(expected: dict[str, Any], got: dict[str, Any]) -> str:
    """Each field that differs; both events whole when they are not even of the same type."""
    if expected.get("type") != got.get("type"):
        return f"  expected {_described(expected)}\n  got      {_described(got)}"
    lines = [f"  {expected.get('type')} (seq {expected.get('seq')}), recorded vs live:"]
    for name in [*expected, *(key for key in got if key not in expected)]:
        if expected.get(name) != got.get(name):
            lines.append(
                f"  {name}: expected {_shown(expected.get(name))} got {_shown(got.get(name))}"
            )
    return "\n".join(lines)


def _described(event: dict[str, Any]) -> str:
    fields = ", ".join(
        f"{name}={_shown(value)}"
        for name, value in event.items()
        if name != "type" and value is not None
    )
    return f"{event.get('type')} ({fields})"


def _shown(value: Any) -> str:
    """A field's value for people: strings quoted but not escaped again (line breaks aside)."""
    if isinstance(value, str):
        text = '"' + value.translate(_VISIBLE_CONTROLS) + '"'
    else:
        text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}… ({len(text)} chars)"


def _diverged(message: str) -> ReplayError:
    return ReplayError(ReplayCode.DIVERGED, message)
