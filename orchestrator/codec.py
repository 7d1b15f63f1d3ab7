"""Exact, versioned JSON for every session event and command, and back again.

Transcripts store what went into and came out of a session core in this form,
and replay decodes it to feed a fresh core. Rules this module lives by:
- `encode` runs once per streamed token when recording is on: it builds a dict
  of the object's fields and makes one C-accelerated `json` call. No pydantic
  validation, no `dataclasses.asdict` deep copies.
- `decode_event`, `decode_command` and `decode_config` run off the hot path
  and rebuild objects equal to the encoded ones: tuples stay tuples, wire
  models are validated back into their classes, float fields stay floats.
- Every payload is a JSON object whose `type` names its class (events by their
  trigger). A store keeps `CODEC_VERSION` next to the payloads it writes and
  passes it back to `check_version` before decoding.
- Fields typed `Any` (tool outputs, message dicts, tool arguments) carry JSON
  values: objects with string keys, lists (never tuples), strings, numbers
  (never NaN), booleans and null.
- Text is ASCII-only JSON (`\\uXXXX` escapes), so any string survives, even a
  lone surrogate, and any byte-oriented store can hold it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Annotated, Any, get_origin, get_type_hints

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from orchestrator.commands import (
    AbortLlmRequest,
    ClearToolTimer,
    Command,
    EmitEvent,
    RejectEvent,
    StartLlmRequest,
    StartToolTimer,
    StartTurnTimer,
)
from orchestrator.core import CoreConfig
from orchestrator.events import (
    EVENT_TYPES,
    Event,
    LlmToolCallsCompleted,
    ModelToolCall,
    SeqFloorRaised,
)
from orchestrator.fast_json import compact_encoder
from wire import AgentServiceError, NumberedEvent

CODEC_VERSION = 1

COMMAND_TAGS: dict[type[Command], str] = {
    EmitEvent: "emit_event",
    RejectEvent: "reject_event",
    StartLlmRequest: "start_llm_request",
    AbortLlmRequest: "abort_llm_request",
    StartToolTimer: "start_tool_timer",
    ClearToolTimer: "clear_tool_timer",
    StartTurnTimer: "start_turn_timer",
}
EVENT_TAGS: dict[type[Event], str] = {cls: cls.trigger for cls in EVENT_TYPES}

_NUMBERED_EVENT: TypeAdapter[NumberedEvent] = TypeAdapter(
    Annotated[NumberedEvent, Field(discriminator="type")]
)


class CodecError(AgentServiceError):
    """A payload cannot be encoded or decoded; `code` says which way it failed."""

    code = "bad_payload"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotEncodable(CodecError):
    """The object holds a value JSON cannot carry exactly."""

    code = "not_encodable"


class UnsupportedCodecVersion(CodecError):
    """The payloads were written by a codec version this code cannot read."""

    code = "unsupported_codec_version"


def check_version(version: int) -> None:
    """Raise `UnsupportedCodecVersion` unless payloads of `version` decode here."""
    if version != CODEC_VERSION:
        raise UnsupportedCodecVersion(
            f"payloads use codec version {version}; this code reads version {CODEC_VERSION}"
        )


# ---- encoding (hot path) ----------------------------------------------------------------


def _nested(value: object) -> Any:
    """JSON form of objects nested in a payload: wire models and model tool calls."""
    if isinstance(value, BaseModel):
        return value.__dict__
    if isinstance(value, ModelToolCall):
        return {"id": value.id, "name": value.name, "arguments": value.arguments}
    raise TypeError(f"{type(value).__name__} is not JSON")


_to_json = compact_encoder(_nested)


def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(cls))


def _fields_encoder(tag: str, cls: type) -> Callable[[Any], dict[str, Any]]:
    names = _field_names(cls)
    return lambda obj: {"type": tag, **{name: getattr(obj, name) for name in names}}


def _emit_event_fields(command: EmitEvent) -> dict[str, Any]:
    return {"type": "emit_event", "event": command.event.__dict__}


_ENCODERS: dict[type, Callable[[Any], dict[str, Any]]] = {
    **{cls: _fields_encoder(tag, cls) for cls, tag in EVENT_TAGS.items()},
    SeqFloorRaised: _fields_encoder(SeqFloorRaised.trigger, SeqFloorRaised),
    **{cls: _fields_encoder(tag, cls) for cls, tag in COMMAND_TAGS.items()},
    EmitEvent: _emit_event_fields,
}


def encode(item: Event | Command) -> str:
    """The exact JSON text of one event or command (compact, ASCII-only)."""
    try:
        return _to_json(_ENCODERS[type(item)](item))
    except KeyError:
        raise NotEncodable(f"{type(item).__name__} is neither an event nor a command") from None
    except (TypeError, ValueError) as exc:
        raise NotEncodable(f"{type(item).__name__} cannot be encoded: {exc}") from None


def encode_config(config: CoreConfig) -> str:
    """The JSON text of a session's core config, as a store keeps it for replay."""
    return _to_json(dataclasses.asdict(config))


# ---- decoding ---------------------------------------------------------------------------


def _float_fields(cls: type) -> frozenset[str]:
    hints = get_type_hints(cls)
    return frozenset(name for name in _field_names(cls) if hints[name] is float)


def _tuple_fields(cls: type) -> frozenset[str]:
    hints = get_type_hints(cls)
    return frozenset(name for name in _field_names(cls) if get_origin(hints[name]) is tuple)


def _builder(cls: type) -> Callable[[dict[str, Any]], Any]:
    """Rebuild `cls` from its decoded fields; JSON numbers become floats and JSON arrays
    tuples where `cls` says so."""
    floats = _float_fields(cls)
    tuples = _tuple_fields(cls)

    def build(fields: dict[str, Any]) -> Any:
        for name in floats & fields.keys():
            fields[name] = float(fields[name])
        for name in tuples & fields.keys():
            fields[name] = tuple(fields[name])
        return cls(**fields)

    return build


def _tool_calls(fields: dict[str, Any]) -> LlmToolCallsCompleted:
    calls = tuple(ModelToolCall(**call) for call in fields.pop("calls"))
    return LlmToolCallsCompleted(calls=calls, **fields)


def _llm_request(fields: dict[str, Any]) -> StartLlmRequest:
    messages = tuple(fields.pop("messages"))
    tools = tuple(fields.pop("tools"))
    return StartLlmRequest(messages=messages, tools=tools, **fields)


def _emit_event(fields: dict[str, Any]) -> EmitEvent:
    return EmitEvent(event=_NUMBERED_EVENT.validate_python(fields.pop("event")), **fields)


_EVENT_BUILDERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    **{tag: _builder(cls) for cls, tag in EVENT_TAGS.items()},
    SeqFloorRaised.trigger: _builder(SeqFloorRaised),
    EVENT_TAGS[LlmToolCallsCompleted]: _tool_calls,
}
_COMMAND_BUILDERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    **{tag: _builder(cls) for cls, tag in COMMAND_TAGS.items()},
    COMMAND_TAGS[StartLlmRequest]: _llm_request,
    COMMAND_TAGS[EmitEvent]: _emit_event,
}


def _decode(text: str, builders: dict[str, Callable[[dict[str, Any]], Any]], what: str) -> Any:
    try:
        fields = json.loads(text)
    except ValueError as exc:
        raise CodecError(f"{what} is not JSON: {exc}") from None
    if not isinstance(fields, dict):
        raise CodecError(f"{what} is not a JSON object")
    tag = fields.pop("type", None)
    build = builders.get(tag) if isinstance(tag, str) else None
    if build is None:
        raise CodecError(f"{what} has an unknown type {tag!r}")
    try:
        return build(fields)
    except (TypeError, ValueError, KeyError, ValidationError) as exc:
        raise CodecError(f"{what} of type {tag!r} does not fit its class: {exc}") from None


def decode_event(text: str) -> Event:
    """The event encoded in `text`; raises `CodecError` if it is not one."""
    event: Event = _decode(text, _EVENT_BUILDERS, "event payload")
    return event


def decode_command(text: str) -> Command:
    """The command encoded in `text`; raises `CodecError` if it is not one."""
    command: Command = _decode(text, _COMMAND_BUILDERS, "command payload")
    return command


_CONFIG_BUILDER = _builder(CoreConfig)


def decode_config(text: str) -> CoreConfig:
    """The core config encoded by `encode_config`; raises `CodecError` if it is not one."""
    try:
        fields = json.loads(text)
        if not isinstance(fields, dict):
            raise TypeError("not a JSON object")
        config: CoreConfig = _CONFIG_BUILDER(fields)
    except (TypeError, ValueError) as exc:
        raise CodecError(f"core config does not fit CoreConfig: {exc}") from None
    return config
