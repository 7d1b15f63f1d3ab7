"""The four IDE tools: their IDE names, LLM function names and argument schemas.

`git.diff` is not a valid OpenAI function name, so every tool has two names:
the IDE's (on the wire to the IDE) and the LLM's (in the conversation upstream).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReadFileArguments(_Arguments):
    """Read one file of the workspace."""

    path: str = Field(description="Path relative to the workspace root.")


class WriteFileArguments(_Arguments):
    """Create or overwrite one file of the workspace."""

    path: str = Field(description="Path relative to the workspace root.")
    content: str = Field(description="The complete new content of the file.")


class GitDiffArguments(_Arguments):
    """Show the workspace's uncommitted changes, as `git diff` prints them."""

    path: str | None = Field(default=None, description="Limit the diff to this path.")
    staged: bool = Field(default=False, description="Show staged changes instead.")


class ApplyPatchArguments(_Arguments):
    """Apply a unified diff to the workspace, all or nothing."""

    diff: str = Field(description="A unified diff as `git diff` writes it.")


class ToolSpec(BaseModel):
    """One tool as both sides see it."""

    model_config = ConfigDict(frozen=True)

    ide_name: str
    llm_name: str
    description: str
    arguments: type[_Arguments]

    def openai_tool(self) -> dict[str, Any]:
        """The tool as an OpenAI `tools` entry."""
        schema = self.arguments.model_json_schema()
        schema.pop("title", None)
        schema.pop("description", None)
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
        return {
            "type": "function",
            "function": {
                "name": self.llm_name,
                "description": self.description,
                "parameters": schema,
            },
        }


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        ide_name="read_file",
        llm_name="read_file",
        description="Read a file of the user's workspace. Returns {content}.",
        arguments=ReadFileArguments,
    ),
    ToolSpec(
        ide_name="write_file",
        llm_name="write_file",
        description="Create or overwrite a file of the workspace. Returns {bytes_written}.",
        arguments=WriteFileArguments,
    ),
    ToolSpec(
        ide_name="git.diff",
        llm_name="git_diff",
        description="Show uncommitted changes of the workspace as a git diff. Returns {diff}.",
        arguments=GitDiffArguments,
    ),
    ToolSpec(
        ide_name="apply_patch",
        llm_name="apply_patch",
        description=(
            "Apply a unified diff (as `git diff` writes it) to the workspace, all or nothing. "
            "Returns {files}."
        ),
        arguments=ApplyPatchArguments,
    ),
)

TOOL_NAMES: tuple[str, ...] = tuple(spec.ide_name for spec in TOOLS)
BY_IDE_NAME: dict[str, ToolSpec] = {spec.ide_name: spec for spec in TOOLS}
BY_LLM_NAME: dict[str, ToolSpec] = {spec.llm_name: spec for spec in TOOLS}
OPENAI_TOOLS: tuple[dict[str, Any], ...] = tuple(spec.openai_tool() for spec in TOOLS)


class ToolArgumentsError(ValueError):
    """The model's call cannot be sent to the IDE; `message` tells the model how to fix it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse_llm_call(llm_name: str, arguments_json: str) -> tuple[ToolSpec, dict[str, Any]]:
    """Validate a model's tool call and return its spec and checked arguments.

    Raises ToolArgumentsError naming what is wrong and the schema to follow.
    """
    spec = BY_LLM_NAME.get(llm_name)
    if spec is None:
        known = ", ".join(BY_LLM_NAME)
        raise ToolArgumentsError(f"Unknown tool {llm_name!r}. Available tools: {known}.")
    schema = json.dumps(spec.openai_tool()["function"]["parameters"], sort_keys=True)
    try:
        raw = json.loads(arguments_json) if arguments_json.strip() else {}
    except (ValueError, RecursionError) as exc:
        raise ToolArgumentsError(
            f"Arguments of {llm_name} are not valid JSON ({exc}). Schema: {schema}"
        ) from None
    if not isinstance(raw, dict):
        raise ToolArgumentsError(f"Arguments of {llm_name} must be a JSON object. Schema: {schema}")
    try:
        checked = spec.arguments.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ToolArgumentsError(
            f"Arguments of {llm_name} do not fit its schema ({problems}). Schema: {schema}"
        ) from None
    return spec, checked.model_dump(exclude_defaults=True)
