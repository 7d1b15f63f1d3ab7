"""The codec turns every event and command into JSON text and back into an equal object.

Hypothesis generates every event and command class, the wire models inside
`EmitEvent` included, with arbitrary text (lone surrogates too), JSON values
in the `Any` fields, tuples, floats and None; decoding what was encoded must
give back an equal object of the same class, and encoding that again the same
text.
"""

from __future__ import annotations

import math
import typing
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.codec import (
    CODEC_VERSION,
    COMMAND_TAGS,
    EVENT_TAGS,
    CodecError,
    NotEncodable,
    UnsupportedCodecVersion,
    check_version,
    decode_command,
    decode_config,
    decode_event,
    encode,
    encode_config,
)
from orchestrator.commands import (
    AbortLlmRequest,
    ClearToolTimer,
    Command,
    EmitEvent,
    RejectEvent,
    StartLlmRequest,
    StartToolTimer,
)
from orchestrator.core import CoreConfig
from orchestrator.events import (
    EVENT_TYPES,
    CancelRequested,
    LlmFailed,
    LlmStreamEnded,
    LlmTextDelta,
    LlmToolCallsCompleted,
    ModelToolCall,
    ToolResultReceived,
    ToolTimedOut,
    UserMessageReceived,
)
from wire import (
    AgentDelta,
    AgentMessage,
    Error,
    ErrorSource,
    SessionState,
    StateChanged,
    ToolCall,
    Usage,
)

texts = st.text(st.characters(exclude_categories=()), max_size=20)
ids = st.text(max_size=8)
maybe_ids = st.none() | ids
counts = st.integers(min_value=0, max_value=2**70)
floats = st.floats(allow_nan=False)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | floats | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
json_objects = st.dictionaries(texts, json_values, max_size=4)
states = st.sampled_from(SessionState)

events = st.one_of(
    st.builds(UserMessageReceived, content=texts, message_id=maybe_ids),
    st.builds(LlmTextDelta, request_id=ids, text=texts),
    st.builds(
        LlmToolCallsCompleted,
        request_id=ids,
        calls=st.lists(
            st.builds(ModelToolCall, id=ids, name=texts, arguments=texts), max_size=3
        ).map(tuple),
    ),
    st.builds(
        LlmStreamEnded,
        request_id=ids,
        finish_reason=texts,
        prompt_tokens=counts,
        completion_tokens=counts,
    ),
    st.builds(LlmFailed, request_id=ids, code=texts, message=texts),
    st.builds(
        ToolResultReceived,
        call_id=ids,
        ok=st.booleans(),
        output=json_values,
        error_code=maybe_ids,
        error_message=st.none() | texts,
        message_id=maybe_ids,
    ),
    st.builds(ToolTimedOut, call_id=ids),
    st.builds(CancelRequested, message_id=maybe_ids),
)

numbered_events = st.one_of(
    st.builds(StateChanged, session_id=ids, seq=counts, state=states, previous=states),
    st.builds(AgentDelta.model_construct, session_id=ids, seq=counts, turn_id=ids, text=texts),
    st.builds(
        ToolCall, session_id=ids, seq=counts, call_id=ids, tool=texts, arguments=json_objects
    ),
    st.builds(
        AgentMessage,
        session_id=ids,
        seq=counts,
        turn_id=ids,
        content=texts,
        finish_reason=texts,
        usage=st.builds(Usage, prompt_tokens=counts, completion_tokens=counts),
    ),
    st.builds(
        Error,
        code=texts,
        message=texts,
        source=st.sampled_from(ErrorSource),
        fatal=st.booleans(),
        call_id=maybe_ids,
        id=maybe_ids,
        session_id=maybe_ids,
        seq=st.none() | counts,
    ),
)

commands = st.one_of(
    st.builds(EmitEvent, event=numbered_events),
    st.builds(
        RejectEvent,
        code=texts,
        message=texts,
        event_type=texts,
        state=texts,
        message_id=maybe_ids,
        call_id=maybe_ids,
    ),
    st.builds(
        StartLlmRequest,
        request_id=ids,
        messages=st.lists(json_objects, max_size=3).map(tuple),
        tools=st.lists(json_objects, max_size=2).map(tuple),
    ),
    st.builds(AbortLlmRequest, request_id=ids),
    st.builds(StartToolTimer, call_id=ids, seconds=floats),
    st.builds(ClearToolTimer, call_id=ids),
)


def _same(decoded: Any, original: Any) -> None:
    assert type(decoded) is type(original)
    assert decoded == original
    if isinstance(original, EmitEvent):
        assert type(decoded.event) is type(original.event)


@given(events)
def test_codec_gives_back_an_equal_event_when_decoding_its_encoding(event: Any) -> None:
    text = encode(event)
    assert text.isascii()
    decoded = decode_event(text)
    _same(decoded, event)
    assert encode(decoded) == text


@given(commands)
def test_codec_gives_back_an_equal_command_when_decoding_its_encoding(command: Any) -> None:
    text = encode(command)
    assert text.isascii()
    decoded = decode_command(text)
    _same(decoded, command)
    assert encode(decoded) == text


@given(
    st.builds(
        CoreConfig,
        max_steps=counts,
        tool_timeout_s=st.integers(0, 10**6) | floats,
        max_tool_output_chars=counts,
        max_user_message_chars=counts,
        system_prompt=texts,
    )
)
def test_codec_gives_back_an_equal_config_when_decoding_its_encoding(config: CoreConfig) -> None:
    decoded = decode_config(encode_config(config))
    assert decoded == config
    assert isinstance(decoded.tool_timeout_s, float)


def test_codec_has_a_tag_for_every_class_when_the_event_and_command_unions_grow() -> None:
    assert set(EVENT_TAGS) == set(EVENT_TYPES)
    assert set(COMMAND_TAGS) == set(typing.get_args(Command))
    assert len(set(EVENT_TAGS.values()) | set(COMMAND_TAGS.values())) == len(EVENT_TAGS) + len(
        COMMAND_TAGS
    )


def test_codec_keeps_float_fields_floats_when_json_wrote_an_integer() -> None:
    decoded = decode_command('{"type":"start_tool_timer","call_id":"c1","seconds":5}')
    assert isinstance(decoded, StartToolTimer)
    assert isinstance(decoded.seconds, float) and decoded.seconds == 5.0


@pytest.mark.parametrize(
    ("text", "decode"),
    [
        ("not json", decode_event),
        ("[1, 2]", decode_event),
        ('{"type": "no_such_event"}', decode_event),
        ('{"type": "emit_event", "event": {"type": "agent_delta"}}', decode_command),
        ('{"type": "llm_delta", "request_id": "t1.1"}', decode_event),
        ('{"type": "llm_delta", "request_id": "t1.1", "text": "x", "extra": 1}', decode_event),
        ('{"type": "llm_delta", "request_id": "t1.1", "text": "x"}', decode_command),
    ],
)
def test_codec_raises_codec_error_when_a_payload_does_not_fit(text: str, decode: Any) -> None:
    with pytest.raises(CodecError) as caught:
        decode(text)
    assert caught.value.code == "bad_payload"


def test_codec_refuses_values_json_cannot_carry_when_encoding() -> None:
    with pytest.raises(NotEncodable):
        encode(ToolResultReceived("c1", ok=True, output={"when": object()}))
    with pytest.raises(NotEncodable):
        encode(ModelToolCall("x", "read_file", "{}"))  # type: ignore[arg-type]


def test_codec_refuses_payloads_of_another_version_when_checking_it() -> None:
    check_version(CODEC_VERSION)
    with pytest.raises(UnsupportedCodecVersion) as caught:
        check_version(CODEC_VERSION + 1)
    assert caught.value.code == "unsupported_codec_version"


def test_codec_gives_back_the_timer_when_its_seconds_are_infinite() -> None:
    decoded = decode_command(encode(StartToolTimer("c1", math.inf)))
    assert decoded == StartToolTimer("c1", math.inf)
