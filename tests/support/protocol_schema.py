"""The committed docs/protocol.schema.json as validators, one per direction.

Tests check frames against the published file itself (not the models that generate it),
so a frame the services send that an IDE team's generated code would not expect fails here.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "protocol.schema.json"
SCHEMA_URI = "urn:agent-service:protocol"


@cache
def schema_document() -> dict[str, Any]:
    """The committed schema document."""
    document: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return document


@cache
def validator(pointer: str) -> Draft202012Validator:
    """A validator for one part of the document: `#ServerMessage`, `#/$defs/Hello`, ..."""
    document = schema_document()
    registry: Registry[Any] = Registry().with_resource(SCHEMA_URI, Resource.from_contents(document))
    return Draft202012Validator(
        {"$ref": SCHEMA_URI + pointer},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def schema_problems(frame: Any, pointer: str) -> list[str]:
    """Every way `frame` breaks the schema part, as `path: message` lines (empty if none)."""
    return [
        f"{'/'.join(str(part) for part in error.absolute_path) or '(frame)'}: {error.message}"
        for error in validator(pointer).iter_errors(frame)
    ]


def direction_mapping(anchor: str) -> dict[str, str]:
    """The discriminator mapping of one direction (`ClientMessage`, `ServerMessage`)."""
    (direction,) = (part for part in schema_document()["oneOf"] if part["$anchor"] == anchor)
    mapping: dict[str, str] = direction["discriminator"]["mapping"]
    return mapping


def assert_server_frame(frame: Any) -> None:
    """Fail unless `frame` is a server frame as the published schema describes it (checked
    against its message's definition first, for a precise message, then the whole union)."""
    kind = frame.get("type") if isinstance(frame, dict) else None
    pointer = direction_mapping("ServerMessage").get(kind) if isinstance(kind, str) else None
    problems = schema_problems(frame, pointer) if pointer else []
    problems = problems or schema_problems(frame, "#ServerMessage")
    assert not problems, f"server frame breaks docs/protocol.schema.json: {problems}\n{frame}"
