"""The IDE tools: their IDE names, LLM function names, argument and output schemas.

`git.diff` is not a valid OpenAI function name, so every tool has two names:
the IDE's (on the wire to the IDE) and the LLM's (in the conversation upstream).

The registry (`TOOLS`) is the one place a tool is declared: the protocol schema,
the model's tool list and the checks of its calls are all drawn from it. A
`core` tool is offered to every session whose IDE declares no capabilities; any
other tool only to an IDE that lists it in `hello.capabilities.tools`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from wire.errors import AgentServiceError
from wire.text import validation_problems


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

    diff: str = Field(
        description="A unified diff as `git diff` writes it, or a `*** Begin Patch` patch."
    )


class ListFilesArguments(_Arguments):
    """List the workspace's files, as git would see them (ignored files left out)."""

    path: str = Field(default=".", description="Directory to list, relative to the root.")
    pattern: str | None = Field(
        default=None,
        description="Glob the paths must match, gitignore-style: 'auth.js' or '*.py' at any "
        "depth, 'src/**/*.ts' from the root.",
    )
    max_results: int = Field(default=200, ge=1, le=1000, description="At most this many files.")


class SearchArguments(_Arguments):
    """Find lines of the workspace's text files (ignored and binary files left out)."""

    query: str = Field(min_length=1, max_length=1000, description="Text (or regex) to find.")
    regex: bool = Field(default=False, description="Read `query` as a regular expression.")
    ignore_case: bool = Field(default=False, description="Match letters in any case.")
    path: str = Field(default=".", description="Directory or file to search in.")
    glob: str | None = Field(
        default=None, description="Only files whose path matches this glob, e.g. '*.py'."
    )
    max_results: int = Field(default=100, ge=1, le=500, description="At most this many lines.")


class _Output(BaseModel):
    model_config = ConfigDict(frozen=True)


class ReadFileOutput(_Output):
    """What `read_file` returns."""

    content: str = Field(description="The whole file as UTF-8 text.")


class WriteFileOutput(_Output):
    """What `write_file` returns."""

    bytes_written: int = Field(ge=0, description="Size of the new content in UTF-8 bytes.")


class GitDiffOutput(_Output):
    """What `git.diff` returns."""

    diff: str = Field(description="The diff as `git diff` prints it; empty when nothing changed.")


class ApplyPatchOutput(_Output):
    """What `apply_patch` returns."""

    files: list[str] = Field(description="Every path the diff changed, in diff order.")


class ListedFile(_Output):
    """One file `list_files` found."""

    path: str = Field(description="Relative to the workspace root.")
    size: int = Field(ge=0, description="Size in bytes.")


class ListFilesOutput(_Output):
    """What `list_files` returns."""

    files: list[ListedFile] = Field(description="The matching files, in path order.")
    truncated: bool = Field(description="More files matched than were returned or walked.")


class SearchMatch(_Output):
    """One line `search` found."""

    path: str = Field(description="Relative to the workspace root.")
    line: int = Field(ge=1, description="1-based line number.")
    text: str = Field(description="The line, cut if very long.")


class SearchOutput(_Output):
    """What `search` returns."""

    matches: list[SearchMatch] = Field(description="path:line:text of each match.")
    truncated: bool = Field(description="More lines matched than were returned or searched.")


class ToolSpec(BaseModel):
    """One tool as both sides see it; `core` tools are offered when the IDE declares none."""

    model_config = ConfigDict(frozen=True)

    ide_name: str
    llm_name: str
    description: str
    arguments: type[_Arguments]
    output: type[_Output]
    core: bool = True
    writes: bool = False
    """The tool changes the workspace: the session's approval mode decides whether it runs."""

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
        output=ReadFileOutput,
    ),
    ToolSpec(
        ide_name="write_file",
        llm_name="write_file",
        description="Create or overwrite a file of the workspace. Returns {bytes_written}.",
        arguments=WriteFileArguments,
        output=WriteFileOutput,
        writes=True,
    ),
    ToolSpec(
        ide_name="git.diff",
        llm_name="git_diff",
        description="Show uncommitted changes of the workspace as a git diff. Returns {diff}.",
        arguments=GitDiffArguments,
        output=GitDiffOutput,
    ),
    ToolSpec(
        ide_name="apply_patch",
        llm_name="apply_patch",
        description=(
            "Apply a unified diff (as `git diff` writes it) or a `*** Begin Patch` patch to the "
            "workspace, all or nothing. Hunks are found by their context lines. Returns {files}."
        ),
        arguments=ApplyPatchArguments,
        output=ApplyPatchOutput,
        writes=True,
    ),
    ToolSpec(
        ide_name="list_files",
        llm_name="list_files",
        description=(
            "List files of the workspace (a directory, optionally filtered by a glob), "
            "leaving out what .gitignore ignores. Returns {files: [{path, size}], truncated}."
        ),
        arguments=ListFilesArguments,
        output=ListFilesOutput,
        core=False,
    ),
    ToolSpec(
        ide_name="search",
        llm_name="search",
        description=(
            "Search the workspace's text files for a string or regular expression, leaving "
            "out ignored and binary files. Returns {matches: [{path, line, text}], truncated}."
        ),
        arguments=SearchArguments,
        output=SearchOutput,
        core=False,
    ),
)

TOOL_NAMES: tuple[str, ...] = tuple(spec.ide_name for spec in TOOLS)
CORE_TOOL_NAMES: tuple[str, ...] = tuple(spec.ide_name for spec in TOOLS if spec.core)
BY_IDE_NAME: dict[str, ToolSpec] = {spec.ide_name: spec for spec in TOOLS}
BY_LLM_NAME: dict[str, ToolSpec] = {spec.llm_name: spec for spec in TOOLS}
WRITE_TOOL_NAMES: tuple[str, ...] = tuple(spec.ide_name for spec in TOOLS if spec.writes)


def offered_tools(declared: Sequence[str] | None) -> tuple[str, ...]:
    """The tools a session offers the model: the known ones the IDE declared, in registry
    order (names this server does not know are ignored), or the core tools if it declared none.
    """
    if declared is None:
        return CORE_TOOL_NAMES
    wanted = set(declared)
    return tuple(name for name in TOOL_NAMES if name in wanted)


@lru_cache(maxsize=64)
@lru_cache(maxsize=64)
def openai_tools(offered: tuple[str, ...]) -> tuple[dict[str, Any], ...]:
    """The `tools` list of a model request offering these IDE tools, computed once per set
    (building the JSON schemas costs more than the rest of a request): the same tuple every
    time, which callers must not change."""
    return tuple(BY_IDE_NAME[name].openai_tool() for name in offered)


OPENAI_TOOLS: tuple[dict[str, Any], ...] = openai_tools(CORE_TOOL_NAMES)
"""The model's tool list of a session whose IDE declared no capabilities."""


class ToolArgumentsError(AgentServiceError):
    """The model's call cannot be sent to the IDE; `message` tells the model how to fix it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse_llm_call(
    llm_name: str, arguments_json: str, offered: tuple[str, ...]
) -> tuple[ToolSpec, dict[str, Any]]:
    """Validate a model's call of one of the `offered` tools; return its spec and checked
    arguments. A tool the session does not offer is unknown to the model, whatever the registry.

    Raises ToolArgumentsError naming what is wrong and the schema to follow.
    """
    spec = BY_LLM_NAME.get(llm_name)
    if spec is None or spec.ide_name not in offered:
        known = ", ".join(BY_IDE_NAME[name].llm_name for name in offered) or "none"
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
        problems = validation_problems(exc, "(root)")
        raise ToolArgumentsError(
            f"Arguments of {llm_name} do not fit its schema ({problems}). Schema: {schema}"
        ) from None
    return spec, checked.model_dump(exclude_defaults=True)


_PATCH_HEADERS = ("*** Add File: ", "*** Update File: ", "*** Delete File: ", "*** Move to: ")


def _diff_header_path(line: str) -> str | None:
    """The path of a unified diff's `---`/`+++` line without its `a/`/`b/` prefix, if any."""
    name = line[4:].split("\t", 1)[0].strip()
    if name == "/dev/null" or not name:
        return None
    return name[2:] if name[:2] in ("a/", "b/") else name


def written_paths(arguments: dict[str, Any]) -> tuple[str, ...]:
    """The workspace paths a write call names: its `path`, or every file a patch's headers
    name (unified `---`/`+++` lines, `*** Add/Update/Delete File:`), each once, in order.

    The approval rules remembered per path (`allow_path`) are matched against these."""
    path = arguments.get("path")
    if isinstance(path, str):
        return (path,)
    diff = arguments.get("diff")
    found: list[str] = []
    for line in diff.splitlines() if isinstance(diff, str) else ():
        if line.startswith(("--- ", "+++ ")):
            name = _diff_header_path(line)
        else:
            header = next((h for h in _PATCH_HEADERS if line.startswith(h)), None)
            name = line[len(header) :].strip() if header else None
        if name:
            found.append(name)
    return tuple(dict.fromkeys(found))
