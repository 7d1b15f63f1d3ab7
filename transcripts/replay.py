"""Deterministic replay: feed a transcript's inputs to a fresh core and compare every output.

Each recorded input is decoded and fed to a new `SessionCore(session_id,
config)`; the commands it returns are encoded and redacted exactly as the
recorder did (same codec, the session's own redaction patterns) and compared,
as text, with the output rows recorded after that input. Text comparison is
bit for bit: `1` and `1.0`, `true` and `1`, and key order all count.

Redacted sessions: the core replays the redacted inputs. Outputs derived from
a redacted tool output still match when the redaction lands in the same place
(the usual case); they can differ when it changes a length the core acts on
(output clipping) or a secret was split across model chunks. A divergence in
such a session says so, and still fails.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

from orchestrator import (
    CodecError,
    SessionCore,
    check_version,
    decode_config,
    decode_event,
    encode,
)
from transcripts.errors import CorruptTranscript
from transcripts.redaction import Redactor
from transcripts.store import INPUT, EventRecord, SessionRecord, TranscriptStore

INPUT_CHARS = 300


@dataclass(slots=True)
class Step:
    """One recorded input, the outputs recorded after it, and what the current code made of it."""

    number: int
    input: EventRecord
    recorded: list[EventRecord] = field(default_factory=list)
    replayed: list[str] = field(default_factory=list)
    failure: str | None = None


@dataclass(frozen=True, slots=True)
class Divergence:
    """The first place where the replay differs from the recording."""

    step: int
    input_seq: int
    input_payload: str
    output: int
    what: str
    recorded_seq: int | None
    expected: str | None
    got: str | None

    def render(self) -> str:
        """Where, expected and got, as a unified diff of pretty JSON."""
        where = f"recorded seq {self.recorded_seq}" if self.recorded_seq else "not recorded"
        shown = self.input_payload
        if len(shown) > INPUT_CHARS:
            shown = f"{shown[:INPUT_CHARS]}... ({len(self.input_payload)} chars)"
        lines = [
            f"at input {self.step} (seq {self.input_seq}): {shown}",
            f"output {self.output} of that input ({where}): {self.what}",
        ]
        diff = list(
            difflib.unified_diff(
                _pretty(self.expected),
                _pretty(self.got),
                fromfile=f"recorded (seq {self.recorded_seq})" if self.recorded_seq else "recorded",
                tofile="replayed",
                lineterm="",
            )
        )
        if not diff and self.expected is not None and self.got is not None:
            diff = [f"- {self.expected}", f"+ {self.got}"]
        return "\n".join(lines + diff)


@dataclass(frozen=True, slots=True)
class Verdict:
    """How replaying one transcript went."""

    session: SessionRecord
    divergence: Divergence | None

    @property
    def ok(self) -> bool:
        """True when every output matched."""
        return self.divergence is None

    def report(self) -> str:
        """One line when it matched; the diff, and a note on redaction, when it did not."""
        session = self.session
        counts = f"{session.inputs} inputs, {session.outputs} outputs"
        if self.divergence is None:
            return f"ok        {session.session_id} ({counts})"
        text = f"DIVERGED  {session.session_id} ({counts})\n{self.divergence.render()}"
        if session.redactions:
            text += (
                f"\nnote: {session.redactions} secrets were redacted when this session was "
                "recorded; the core replayed the redacted inputs, so this difference may come "
                "from the redaction rather than from a change in the code"
            )
        return text


def _pretty(payload: str | None) -> list[str]:
    if payload is None:
        return []
    text = json.dumps(json.loads(payload), indent=2, ensure_ascii=False)
    return text.encode("utf-8", "backslashreplace").decode("utf-8").splitlines()


def replay_steps(store: TranscriptStore, session: SessionRecord) -> Iterator[Step]:
    """Replay the session input by input; stops after a step whose input made the core raise."""
    try:
        check_version(session.codec_version)
        config = decode_config(session.config)
    except CodecError as exc:
        raise CorruptTranscript(f"session {session.session_id}: {exc.message}") from None
    redactor = Redactor(session.meta.get("redaction_patterns", []))
    core = SessionCore(session.session_id, config)
    step: Step | None = None
    for row in store.events(session.session_id):
        if row.kind != INPUT:
            if step is None:
                raise CorruptTranscript(
                    f"session {session.session_id}: output seq {row.seq} comes before any input"
                )
            step.recorded.append(row)
            continue
        if step is not None:
            yield step
            if step.failure is not None:
                return
        step = Step(number=step.number + 1 if step else 1, input=row)
        try:
            event = decode_event(row.payload)
        except CodecError as exc:
            raise CorruptTranscript(
                f"session {session.session_id}: input seq {row.seq}: {exc.message}"
            ) from None
        try:
            commands = core.handle(event)
        except Exception as exc:
            step.failure = f"the core raised {type(exc).__name__}: {exc}"
            continue
        step.replayed = [redactor.redact(encode(command))[0] for command in commands]
    if step is not None:
        yield step


def _first_difference(step: Step) -> Divergence | None:
    def divergence(index: int, what: str) -> Divergence:
        recorded = step.recorded[index] if index < len(step.recorded) else None
        return Divergence(
            step=step.number,
            input_seq=step.input.seq,
            input_payload=step.input.payload,
            output=index + 1,
            what=what,
            recorded_seq=recorded.seq if recorded else None,
            expected=recorded.payload if recorded else None,
            got=step.replayed[index] if index < len(step.replayed) else None,
        )

    if step.failure is not None:
        return divergence(0, step.failure)
    for index, (recorded, got) in enumerate(zip(step.recorded, step.replayed, strict=False)):
        if recorded.payload != got:
            return divergence(index, "differs")
    if len(step.replayed) > len(step.recorded):
        return divergence(len(step.recorded), "the replay made an output the recording lacks")
    if len(step.recorded) > len(step.replayed):
        return divergence(len(step.replayed), "the recording has an output the replay did not make")
    return None


def verify_session(store: TranscriptStore, session_id: str) -> Verdict:
    """Replay one transcript and report its first divergence, if any."""
    session = store.session(session_id)
    for step in replay_steps(store, session):
        divergence = _first_difference(step)
        if divergence is not None:
            return Verdict(session, divergence)
    return Verdict(session, None)
