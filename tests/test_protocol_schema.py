"""The published schema document: valid, self-contained, and fit for code generators."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

import wire
from ide_client.errors import ToolCode
from ide_client.tools import IMPLEMENTED_TOOLS
from tests.support.protocol_schema import (
    SCHEMA_URI,
    direction_mapping,
    schema_document,
    schema_problems,
    validator,
)
from wire.schema import CLIENT_MESSAGES, SERVER_MESSAGES, definition_name, message_type

# Names a definition must not take: built-ins of Dart, TypeScript/JavaScript, Kotlin, Swift.
BUILT_IN_NAMES = {
    "Error", "Exception", "Object", "String", "Map", "List", "Set", "Type", "Function",
    "Symbol", "Record", "Date", "Promise", "Iterable", "Stream", "Future", "Duration",
    "Pattern", "Result", "Any", "Never", "Null", "Number", "Boolean", "Array", "Event",
    "Response", "Request",
}  # fmt: skip


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def test_schema_document_is_valid_json_schema_2020_12() -> None:
    Draft202012Validator.check_schema(schema_document())


def test_every_ref_of_the_schema_resolves_inside_the_document() -> None:
    document = schema_document()
    refs = set(_refs(document))
    assert refs, "the document has references"
    for ref in refs:
        assert ref.startswith("#/$defs/"), ref
        assert ref.removeprefix("#/$defs/") in document["$defs"], ref
        validator(ref)._resolver.lookup(SCHEMA_URI + ref)


@pytest.mark.parametrize("anchor", ["ClientMessage", "ServerMessage"])
def test_each_direction_is_a_oneof_with_a_discriminator_mapping(anchor: str) -> None:
    (direction,) = (part for part in schema_document()["oneOf"] if part["$anchor"] == anchor)
    models = CLIENT_MESSAGES if anchor == "ClientMessage" else SERVER_MESSAGES
    assert direction["discriminator"]["propertyName"] == "type"
    assert direction_mapping(anchor) == {
        message_type(model): f"#/$defs/{definition_name(model)}" for model in models
    }
    assert sorted(branch["$ref"] for branch in direction["oneOf"]) == sorted(
        direction_mapping(anchor).values()
    )


@pytest.mark.parametrize("model", [*CLIENT_MESSAGES, *SERVER_MESSAGES], ids=lambda m: m.__name__)
def test_each_message_is_a_named_definition_whose_type_is_a_required_const(model: Any) -> None:
    definition = schema_document()["$defs"][definition_name(model)]
    assert definition["title"] == definition_name(model)
    assert definition["properties"]["type"] == {"const": message_type(model), "type": "string"}
    assert definition["required"][0] == "type"


def test_no_definition_is_named_like_a_language_built_in() -> None:
    assert not set(schema_document()["$defs"]) & BUILT_IN_NAMES
    assert "ErrorEvent" in schema_document()["$defs"]


def test_enums_list_every_tool_state_source_and_code() -> None:
    defs = schema_document()["$defs"]
    assert defs["ToolName"]["enum"] == list(wire.TOOL_NAMES)
    assert defs["SessionState"]["enum"] == [state.value for state in wire.SessionState]
    assert defs["ErrorSource"]["enum"] == [source.value for source in wire.ErrorSource]
    assert defs["ErrorCode"]["enum"] == list(wire.SENT_CODES)
    assert set(wire.ErrorCode) | set(wire.ToolErrorCode) == set(wire.SENT_CODES)


def test_reference_ide_reports_only_codes_the_protocol_defines() -> None:
    assert {code.value for code in ToolCode} <= {code.value for code in wire.ToolErrorCode}


def test_reference_ide_declares_only_tools_of_the_registry() -> None:
    assert set(IMPLEMENTED_TOOLS) <= set(wire.TOOL_NAMES)


@pytest.mark.parametrize("spec", wire.TOOLS, ids=lambda spec: spec.ide_name)
def test_every_tool_has_argument_and_output_definitions(spec: wire.ToolSpec) -> None:
    defs = schema_document()["$defs"]
    assert defs[spec.arguments.__name__]["type"] == "object"
    assert defs[spec.output.__name__]["required"] == list(spec.output.model_fields)


def test_tool_call_for_read_file_takes_a_path_and_its_result_gives_content() -> None:
    call = {"type": "tool_call", "session_id": "s_1", "seq": 3, "call_id": "c1"}
    assert (
        schema_problems({**call, "tool": "read_file", "arguments": {"path": "a"}}, "#ServerMessage")
        == []
    )
    assert schema_problems(
        {**call, "tool": "read_file", "arguments": {"file": "a"}}, "#/$defs/ToolCall"
    )
    assert schema_problems({**call, "tool": "rm_rf", "arguments": {}}, "#/$defs/ToolCall")
    assert schema_problems({"content": "x"}, "#/$defs/ReadFileOutput") == []
    assert schema_problems({"text": "x"}, "#/$defs/ReadFileOutput")


def test_frames_a_generated_client_writes_fit_the_schema_and_the_server_models() -> None:
    written = [
        {
            "type": "hello", "protocol": 1, "id": None, "session_id": None, "last_seq": None,
            "client": {"name": "dart-ide", "version": "1"},
            "capabilities": {"tools": ["read_file"], "features": None},
        },
        {"type": "user_message", "content": "hi", "id": None},
        {"type": "tool_result", "call_id": "c1", "ok": True, "output": {"content": ""}, "error": None, "id": None},
        {"type": "cancel", "id": None},
    ]  # fmt: skip
    for frame in written:
        assert schema_problems(frame, "#ClientMessage") == []
        wire.CLIENT_MESSAGE.validate_python(frame)


def test_server_frames_never_carry_null() -> None:
    error = {"type": "error", "code": "busy", "message": "m", "source": "protocol", "fatal": False}
    assert schema_problems(error, "#ServerMessage") == []
    assert schema_problems({**error, "call_id": None}, "#/$defs/ErrorEvent")
    assert schema_problems({**error, "code": "made_up"}, "#/$defs/ErrorEvent")


def test_the_schema_document_names_every_message_of_both_unions() -> None:
    from typing import get_args

    from wire import ClientMessage, ServerMessage
    from wire.schema import CLIENT_MESSAGES, SERVER_MESSAGES

    def members(union: object) -> set[type]:
        return set(get_args(get_args(union)[0]))

    assert set(SERVER_MESSAGES) == members(ServerMessage)
    assert set(CLIENT_MESSAGES) == members(ClientMessage)
