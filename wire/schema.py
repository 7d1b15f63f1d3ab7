"""The protocol's JSON Schema document, drawn from the wire models and the tool registry.

Written for code generators as much as for validators:
- every message is one named definition under `$defs` whose `type` is a required `const`,
  so `quicktype ... 'protocol.schema.json#/$defs/'` yields one class per message;
- each direction is a `oneOf` with a `discriminator` mapping, reachable as `#ClientMessage`
  and `#ServerMessage` (anchors in the root's `oneOf`, not under `$defs`, so a generator that
  takes every definition makes no catch-all class of them); the root accepts any frame;
- tool names, states, error sources and error codes are enums; every tool has its
  `<Tool>Arguments` and `<Tool>Output` definitions, and `ToolCall` ties its `arguments`
  to its `tool`;
- client fields that may be left out may also be `null` (it means absent); server fields
  that may be left out are never `null`, and the others are required;
- no definition is named like a common language built-in (the model `Error` is `ErrorEvent`);
- `files_reverted` names a frame of each direction; a client frame never carries `seq`, so
  the root's two branches stay apart.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from wire.codes import SENT_CODES
from wire.ide import (
    FEATURES,
    PROTOCOL_MINOR,
    PROTOCOL_VERSION,
    SCHEMA_DEFINITION,
    AgentDelta,
    AgentMessage,
    Approval,
    ApprovalDecision,
    ApprovalMode,
    ApprovalModeChanged,
    ApprovalRequest,
    ApprovalSource,
    Cancel,
    Capabilities,
    ClientInfo,
    ContextReport,
    ContextUsage,
    Decision,
    Error,
    FilesReverted,
    FilesRevertedEvent,
    Hello,
    Session,
    SetApproval,
    StateChanged,
    ToolCall,
    ToolError,
    ToolResult,
    Usage,
    UserMessage,
    UserMessageQueued,
)
from wire.tools import BY_IDE_NAME, CORE_TOOL_NAMES, TOOL_NAMES, TOOLS

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
CLIENT_MESSAGES: tuple[type[BaseModel], ...] = (
    Hello,
    UserMessage,
    ToolResult,
    Cancel,
    SetApproval,
    Approval,
    FilesReverted,
)
SERVER_MESSAGES: tuple[type[BaseModel], ...] = (
    Session,
    StateChanged,
    AgentDelta,
    ToolCall,
    AgentMessage,
    ContextReport,
    Error,
    ApprovalRequest,
    ApprovalDecision,
    ApprovalModeChanged,
    UserMessageQueued,
    FilesRevertedEvent,
)
CLIENT_PARTS: tuple[type[BaseModel], ...] = (ClientInfo, Capabilities, ToolError)
SERVER_PARTS: tuple[type[BaseModel], ...] = (Usage, ContextUsage)
DEFINITION_NAMES: dict[str, str] = {"Error": "ErrorEvent"}
"""Models whose definition takes another name: `Error` shadows Dart's and TypeScript's own."""
_REF = "#/$defs/"


def definition_name(model: type[BaseModel]) -> str:
    """The name of a model's definition in the schema document."""
    return DEFINITION_NAMES.get(model.__name__, model.__name__)


def message_type(model: type[BaseModel]) -> str:
    """The `type` value of a message model."""
    annotation = model.model_fields["type"].annotation
    (value,) = get_args(annotation) if annotation is not None else ()
    assert isinstance(value, str), f"{model.__name__}.type must be a string Literal"
    return value


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"{_REF}{name}"}


def _is_null(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "null"


def _nullable(prop: dict[str, Any]) -> dict[str, Any]:
    """The property with `null` allowed (a client may send it for "absent")."""
    if any(_is_null(option) for option in prop.get("anyOf", [])):
        return prop
    outer: dict[str, Any] = {key: prop[key] for key in ("description", "default") if key in prop}
    inner = {key: value for key, value in prop.items() if key not in outer}
    return {"anyOf": [inner, {"type": "null"}], **outer}


def _not_null(prop: dict[str, Any]) -> dict[str, Any]:
    """The property without its `null` option and default (the server leaves it out instead)."""
    options = [option for option in prop.get("anyOf", []) if not _is_null(option)]
    rest = {key: value for key, value in prop.items() if key not in ("anyOf", "default")}
    if len(options) == 1:
        return {**options[0], **rest}
    return {"anyOf": options, **rest} if options else rest


def _shape(model: type[BaseModel], schema: dict[str, Any], *, client: bool) -> dict[str, Any]:
    """One model's definition as the document states it (see the module's rules)."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, field in model.model_fields.items():
        prop = {key: value for key, value in schema["properties"][name].items() if key != "title"}
        if name == "type":
            prop = {"const": message_type(model), "type": "string"}
            required.append(name)
        elif field.is_required():
            required.append(name)
        elif client:
            prop = _nullable(prop)
        elif field.default is None:
            prop = _not_null(prop)
        else:
            prop.pop("default", None)
            required.append(name)
        properties[name] = prop
    shaped: dict[str, Any] = {
        "title": definition_name(model),
        "description": schema.get("description", ""),
        "type": "object",
        "properties": properties,
        "required": required,
    }
    return shaped


def _rename_refs(node: Any) -> Any:
    """Point every `$ref` at the definition's document name; marked fields at theirs."""
    if isinstance(node, dict):
        if SCHEMA_DEFINITION in node:
            return {**_ref(node[SCHEMA_DEFINITION])}
        out = {key: _rename_refs(value) for key, value in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF):
            out["$ref"] = _REF + DEFINITION_NAMES.get(ref[len(_REF) :], ref[len(_REF) :])
        return out
    if isinstance(node, list):
        return [_rename_refs(item) for item in node]
    return node


def _tool_definitions() -> dict[str, Any]:
    models: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = []
    for spec in TOOLS:
        models += [(spec.arguments, "validation"), (spec.output, "serialization")]
    _, top = models_json_schema(models, ref_template=_REF + "{model}")
    definitions: dict[str, Any] = top["$defs"]
    for definition in definitions.values():
        for prop in definition.get("properties", {}).values():
            prop.pop("title", None)
    return definitions


def _tool_call_arguments() -> list[dict[str, Any]]:
    """`ToolCall.arguments` follows the schema of the tool it names."""
    return [
        {
            "if": {"properties": {"tool": {"const": spec.ide_name}}, "required": ["tool"]},
            "then": {"properties": {"arguments": _ref(spec.arguments.__name__)}},
        }
        for spec in TOOLS
    ]


def _direction(
    title: str, messages: tuple[type[BaseModel], ...], about: str, **extra: Any
) -> dict[str, Any]:
    return {
        **extra,
        "$anchor": title,
        "title": title,
        "description": about,
        "oneOf": [_ref(definition_name(model)) for model in messages],
        "discriminator": {
            "propertyName": "type",
            "mapping": {
                message_type(model): f"{_REF}{definition_name(model)}" for model in messages
            },
        },
    }


def _enum(values: Any, about: str) -> dict[str, Any]:
    name = values.__name__
    return {
        "title": name,
        "description": about,
        "type": "string",
        "enum": [v.value for v in values],
    }


def _enums() -> dict[str, Any]:
    tools = ", ".join(
        f"{name} ({BY_IDE_NAME[name].llm_name} for the model)"
        if BY_IDE_NAME[name].llm_name != name
        else name
        for name in TOOL_NAMES
    )
    return {
        "ToolName": {
            "title": "ToolName",
            "description": f"An IDE tool: {tools}. Core tools (offered when hello declares "
            f"no capabilities): {', '.join(CORE_TOOL_NAMES)}.",
            "type": "string",
            "enum": list(TOOL_NAMES),
        },
        "ApprovalMode": _enum(
            ApprovalMode, "The session's approval mode: who decides whether a write tool runs."
        ),
        "Decision": _enum(Decision, "The user's decision on an `approval_request`."),
        "ApprovalSource": _enum(
            ApprovalSource,
            "Why a write `tool_call` runs: the user allowed it, a rule of the session, the mode.",
        ),
        "ErrorCode": {
            "title": "ErrorCode",
            "description": "Every code an `error` event carries; docs/protocol.md says what "
            "each asks the IDE to do.",
            "type": "string",
            "enum": list(SENT_CODES),
        },
    }


def json_schema() -> dict[str, Any]:
    """The whole protocol as one JSON Schema 2020-12 document (`agent-service schema`)."""
    client = (*CLIENT_MESSAGES, *CLIENT_PARTS)
    server = (*SERVER_MESSAGES, *SERVER_PARTS)
    pairs: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
        *((model, "validation") for model in client),
        *((model, "serialization") for model in server),
    ]
    _, top = models_json_schema(pairs, ref_template=_REF + "{model}")
    generated: dict[str, Any] = top["$defs"]
    definitions: dict[str, Any] = {}
    for models, is_client in ((client, True), (server, False)):
        for model in models:
            shaped = _shape(model, generated.pop(model.__name__), client=is_client)
            definitions[definition_name(model)] = shaped
    definitions.update(generated)
    definitions["ToolCall"]["allOf"] = _tool_call_arguments()
    definitions["ApprovalRequest"]["allOf"] = _tool_call_arguments()
    definitions["ToolResult"]["properties"]["output"]["description"] = (
        "With ok: the tool's output, as its <Tool>Output definition says: "
        + ", ".join(f"{spec.ide_name} → {spec.output.__name__}" for spec in TOOLS)
        + "."
    )
    definitions.update(_tool_definitions())
    definitions.update(_enums())
    features = ", ".join(FEATURES) or "none are defined yet"
    document: dict[str, Any] = _rename_refs(
        {
            "$schema": JSON_SCHEMA_DIALECT,
            "title": "AgentServiceProtocol",
            "description": (
                f"agent-service IDE protocol {PROTOCOL_VERSION}.{PROTOCOL_MINOR}: one JSON object "
                "per WebSocket text frame, told apart by `type`. Client frames: #ClientMessage; "
                "server frames: #ServerMessage. Optional features: "
                f"{features}. See docs/protocol.md."
            ),
            "oneOf": [
                _direction(
                    "ClientMessage",
                    CLIENT_MESSAGES,
                    "A frame the IDE sends to the gateway.",
                    **{"not": {"required": ["seq"]}},
                ),
                _direction(
                    "ServerMessage", SERVER_MESSAGES, "A frame the gateway sends to the IDE."
                ),
            ],
            "$defs": dict(sorted(definitions.items())),
        }
    )
    return document
