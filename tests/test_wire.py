"""The wire models: the published schema and the framing rules of protocol v1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

import wire

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "docs" / "protocol.schema.json"


def test_schema_command_prints_the_committed_schema() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "agent_service", "schema"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert json.loads(printed) == json.loads(SCHEMA_FILE.read_text()), (
        "docs/protocol.schema.json is stale: run `agent-service schema > docs/protocol.schema.json`"
    )


def test_client_union_parses_every_client_frame_of_the_protocol() -> None:
    frames = [
        {"type": "hello", "protocol": 1},
        {"type": "hello", "protocol": 1, "session_id": "s_1", "last_seq": 4},
        {"type": "user_message", "id": "m1", "content": "Add logging to auth.js"},
        {"type": "tool_result", "call_id": "c1", "ok": True, "output": {"content": "x"}},
        {
            "type": "tool_result",
            "call_id": "c2",
            "ok": False,
            "error": {"code": "not_found", "message": "no such file"},
        },
        {"type": "cancel", "id": "x"},
    ]
    parsed = [wire.CLIENT_MESSAGE.validate_python(frame) for frame in frames]
    assert [type(frame).__name__ for frame in parsed] == [
        "Hello",
        "Hello",
        "UserMessage",
        "ToolResult",
        "ToolResult",
        "Cancel",
    ]


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "hello", "protocol": 2},
        {"type": "user_message"},
        {"type": "user_message", "content": 3},
        {"type": "tool_result", "call_id": "c1"},
        {"type": "launch_missiles"},
        {"type": "tool_result", "call_id": "c1", "ok": "yes"},
        {"type": "tool_result", "call_id": "c1", "ok": 1},
        {"type": "hello", "protocol": 1, "last_seq": "0"},
        {"type": "hello", "protocol": 1, "last_seq": True},
        {"type": "hello", "protocol": 1, "last_seq": -1},
        {"type": "hello", "protocol": True},
        {"type": "hello", "protocol": 1.0},
        {"type": "hello", "protocol": "1"},
        {"type": "hello", "protocol": 1, "capabilities": {"tools": "read_file"}},
        {"type": "user_message", "content": None},
        {"type": "tool_result", "call_id": None, "ok": True},
    ],
)
def test_client_union_refuses_frame_when_it_breaks_the_protocol(frame: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        wire.CLIENT_MESSAGE.validate_python(frame)


def test_client_frames_read_null_as_absent_the_way_generated_clients_write_them() -> None:
    written = {
        "type": "hello",
        "protocol": 1,
        "id": None,
        "session_id": None,
        "last_seq": None,
        "client": {"name": "dart-ide", "version": "1.0"},
        "capabilities": {"tools": None, "features": None},
    }
    hello = wire.CLIENT_MESSAGE.validate_python(written)
    assert hello == wire.Hello(
        protocol=1,
        client=wire.ClientInfo(name="dart-ide", version="1.0"),
        capabilities=wire.Capabilities(),
    )
    result = wire.CLIENT_MESSAGE.validate_json(
        '{"type": "tool_result", "call_id": "c1", "ok": true, "output": {"content": ""},'
        ' "error": null, "id": null}'
    )
    assert result == wire.ToolResult(call_id="c1", ok=True, output={"content": ""})


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "hello", "protocol": 1, "resume_hint": "later minor"},
        {"type": "hello", "protocol": 1, "client": {"name": "a", "version": "1", "os": "x"}},
        {"type": "hello", "protocol": 1, "capabilities": {"tools": [], "themes": ["dark"]}},
        {"type": "user_message", "content": "hi", "attachments": []},
        {"type": "tool_result", "call_id": "c1", "ok": True, "elapsed_ms": 3},
        {
            "type": "tool_result",
            "call_id": "c1",
            "ok": False,
            "error": {"code": "x", "message": "m", "hint": "h"},
        },
        {"type": "cancel", "unexpected": True},
    ],
)
def test_client_frames_ignore_fields_they_do_not_know(frame: dict[str, object]) -> None:
    known = wire.CLIENT_MESSAGE.validate_python(frame)
    assert type(known).__name__ in {"Hello", "UserMessage", "ToolResult", "Cancel"}


def test_session_offers_the_core_tools_when_the_ide_declares_none() -> None:
    assert wire.offered_tools(None) == wire.CORE_TOOL_NAMES
    assert wire.CORE_TOOL_NAMES == ("read_file", "write_file", "git.diff", "apply_patch")


def test_session_offers_the_declared_tools_it_knows_in_registry_order() -> None:
    declared = ["apply_patch", "teleport", "read_file", "read_file"]
    assert wire.offered_tools(declared) == ("read_file", "apply_patch")
    assert wire.offered_tools([]) == ()
    names = [tool["function"]["name"] for tool in wire.openai_tools(("read_file", "git.diff"))]
    assert names == ["read_file", "git_diff"]


def test_parse_llm_call_refuses_a_known_tool_the_session_does_not_offer() -> None:
    with pytest.raises(wire.ToolArgumentsError) as caught:
        wire.parse_llm_call("apply_patch", '{"diff": ""}', ("read_file",))
    assert caught.value.message == "Unknown tool 'apply_patch'. Available tools: read_file."


def test_encode_leaves_out_absent_optionals() -> None:
    text = wire.encode(wire.Error(code="busy", message="m", source=wire.ErrorSource.PROTOCOL))
    assert json.loads(text) == {
        "type": "error",
        "code": "busy",
        "message": "m",
        "source": "protocol",
        "fatal": False,
    }


def test_tools_map_git_diff_to_a_valid_openai_function_name() -> None:
    names = {tool["function"]["name"] for tool in wire.OPENAI_TOOLS}
    assert names == {"read_file", "write_file", "git_diff", "apply_patch"}
    assert wire.BY_LLM_NAME["git_diff"].ide_name == "git.diff"


@pytest.mark.parametrize(
    ("name", "arguments", "fragment"),
    [
        ("read_file", "{not json", "not valid JSON"),
        ("read_file", "[]", "must be a JSON object"),
        ("read_file", '{"file": "a"}', "do not fit its schema"),
        ("delete_everything", "{}", "Unknown tool"),
    ],
)
def test_parse_llm_call_explains_what_is_wrong(name: str, arguments: str, fragment: str) -> None:
    with pytest.raises(wire.ToolArgumentsError) as caught:
        wire.parse_llm_call(name, arguments, wire.CORE_TOOL_NAMES)
    assert fragment in caught.value.message
