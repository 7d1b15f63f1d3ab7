"""How one of the service's tool calls looks in an editor: title, kind, locations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from acp import text_block, tool_content
from acp.schema import ContentToolCallContent, ToolCallLocation, ToolKind

_KINDS: dict[str, ToolKind] = {
    "read_file": "read",
    "write_file": "edit",
    "apply_patch": "edit",
    "git.diff": "execute",
}


def tool_kind(tool: str) -> ToolKind:
    """The ACP kind of a tool (the editor picks its icon by it)."""
    return _KINDS.get(tool, "other")


def tool_title(tool: str, arguments: dict[str, Any]) -> str:
    """A short line saying what the call does, e.g. `Read src/auth.js`."""
    path = arguments.get("path")
    if tool == "read_file" and isinstance(path, str):
        return f"Read {path}"
    if tool == "write_file" and isinstance(path, str):
        return f"Write {path}"
    if tool == "apply_patch":
        return "Apply patch"
    if tool == "git.diff":
        return "git diff" + (f" {path}" if isinstance(path, str) else "")
    return tool


def tool_locations(tool: str, arguments: dict[str, Any], root: Path) -> list[ToolCallLocation]:
    """The files a call names, as absolute paths (ACP's follow-along), before it runs."""
    path = arguments.get("path")
    if tool in ("read_file", "write_file") and isinstance(path, str):
        return [ToolCallLocation(path=str(root / path))]
    return []


def tool_preview(tool: str, arguments: dict[str, Any]) -> list[ContentToolCallContent]:
    """What a call shows before its result: the diff an `apply_patch` brings."""
    diff = arguments.get("diff")
    if tool == "apply_patch" and isinstance(diff, str):
        return [tool_content(text_block(f"```diff\n{diff}\n```"))]
    return []


def message(text: str) -> list[ContentToolCallContent]:
    """A plain text shown in a tool call, e.g. why it failed."""
    return [tool_content(text_block(text))]
