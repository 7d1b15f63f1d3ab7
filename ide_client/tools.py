"""The four IDE tools (read_file, write_file, git.diff, apply_patch), run on one workspace.

`ToolRunner.run(tool, arguments)` validates the arguments with the wire models, runs the tool
and returns its `output`, or raises ToolFailure whose code and message become the
`tool_result` error; `ToolRunner.answer(call)` wraps that into the `tool_result` frame. Both
block (file system, git): call them off the event loop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from ide_client.errors import ToolCode, ToolFailure
from ide_client.git import DEFAULT_GIT_TIMEOUT, git_diff
from ide_client.patch import FilePatch, PatchError, apply_hunks, parse_patch
from ide_client.workspace import FileChange, FileStamp, Target, Workspace
from wire import BY_IDE_NAME, ErrorCode, ToolCall, ToolError, ToolResult
from wire.tools import ApplyPatchArguments, GitDiffArguments, ReadFileArguments, WriteFileArguments

log = logging.getLogger(__name__)

IMPLEMENTED_TOOLS: tuple[str, ...] = ("read_file", "write_file", "git.diff", "apply_patch")
"""The tools `ToolRunner.run` runs: what this IDE declares in `hello.capabilities`."""


class ToolRunner:
    """Runs tool calls on one workspace, confined to it."""

    def __init__(self, workspace: Workspace, *, git_timeout: float = DEFAULT_GIT_TIMEOUT) -> None:
        self.workspace = workspace
        self.git_timeout = git_timeout

    def answer(self, call: ToolCall) -> ToolResult:
        """Run the call; its `tool_result`, an error result when the tool failed or crashed."""
        try:
            output = self.run(call.tool, call.arguments)
        except ToolFailure as failure:
            error = ToolError(code=failure.code, message=failure.message)
            return ToolResult(call_id=call.call_id, ok=False, error=error)
        except Exception as exc:
            log.exception("tool crashed", extra={"tool": call.tool, "call_id": call.call_id})
            error = ToolError(code=ErrorCode.TOOL_FAILED, message=f"{call.tool} crashed: {exc}")
            return ToolResult(call_id=call.call_id, ok=False, error=error)
        return ToolResult(call_id=call.call_id, ok=True, output=output)

    def run(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """Run one call; its output as the protocol gives it, or ToolFailure."""
        spec = BY_IDE_NAME.get(tool)
        if spec is None:
            known = ", ".join(BY_IDE_NAME)
            raise ToolFailure(ToolCode.UNKNOWN_TOOL, f"unknown tool {tool!r} (known: {known})")
        checked = _validate(spec.arguments, arguments)
        if isinstance(checked, ReadFileArguments):
            return self.read_file(checked)
        if isinstance(checked, WriteFileArguments):
            return self.write_file(checked)
        if isinstance(checked, GitDiffArguments):
            return self.git_diff(checked)
        if isinstance(checked, ApplyPatchArguments):
            return self.apply_patch(checked)
        raise ToolFailure(ToolCode.UNKNOWN_TOOL, f"tool {tool!r} is not implemented by this IDE")

    def read_file(self, arguments: ReadFileArguments) -> dict[str, Any]:
        """`{content}`: the whole file as UTF-8 text."""
        content, _ = self.workspace.read_text(self.workspace.resolve(arguments.path))
        return {"content": content}

    def write_file(self, arguments: WriteFileArguments) -> dict[str, Any]:
        """`{bytes_written}`: the file replaced (or created, with its directories) atomically."""
        target = self.workspace.resolve(arguments.path, write=True)
        data = arguments.content.encode("utf-8")
        self.workspace.commit([FileChange(target, data)])
        return {"bytes_written": len(data)}

    def git_diff(self, arguments: GitDiffArguments) -> dict[str, Any]:
        """`{diff}`: `git diff` (or `--cached` when staged) of the workspace or one path."""
        pathspec = None
        if arguments.path is not None:
            pathspec = self.workspace.resolve(arguments.path).relative
        diff = git_diff(
            self.workspace.root,
            pathspec,
            staged=arguments.staged,
            max_bytes=self.workspace.max_file_bytes,
            timeout=self.git_timeout,
        )
        return {"diff": diff}

    def apply_patch(self, arguments: ApplyPatchArguments) -> dict[str, Any]:
        """`{files}`: every path the diff changed, after checking all of it against the files."""
        plan = _PatchPlan(self.workspace)
        for file_patch in parse_patch(arguments.diff):
            plan.add(file_patch)
        changes = plan.changes()
        self.workspace.commit(changes)
        return {"files": [change.target.relative for change in changes]}


def _validate(model: type[BaseModel], arguments: dict[str, Any]) -> BaseModel:
    try:
        return model.model_validate(arguments)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(arguments)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ToolFailure(ToolCode.INVALID_ARGUMENTS, problems) from None


@dataclass
class _PlannedFile:
    """A file's state as the patch leaves it so far, and what it was on disk."""

    target: Target
    text: str | None
    original: str | None
    on_disk: FileStamp | None
    mode: int | None
    executable: bool | None = None
    mode_from: int | None = None


class _PatchPlan:
    """The files a diff changes, computed in memory: nothing is written until `changes()`."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.files: dict[tuple[str, ...], _PlannedFile] = {}

    def add(self, patch: FilePatch) -> None:
        """Check one file patch against the current (planned) content and record its result."""
        source = self._source(patch)
        text = "" if source is None else source.text
        if source is not None and text is None:
            raise ToolFailure(ToolCode.NOT_FOUND, f"{source.target.asked}: no such file")
        name = patch.new_path or patch.old_path or ""
        new_text = apply_hunks(text or "", patch.hunks, name)
        if patch.new_path is None:
            if new_text:
                raise PatchError(f"{name}: the deletion does not remove the whole content")
            assert source is not None
            source.text = None
            return
        destination = self._destination(patch, source)
        destination.text = new_text
        self.workspace.check_size(destination.target, new_text.encode("utf-8"))
        if source is not None and source is not destination and not patch.copy:
            source.text = None
        if patch.executable is not None:
            destination.executable = patch.executable

    def _source(self, patch: FilePatch) -> _PlannedFile | None:
        if patch.old_path is None:
            return None
        return self._planned(self.workspace.resolve(patch.old_path, write=not patch.copy))

    def _destination(self, patch: FilePatch, source: _PlannedFile | None) -> _PlannedFile:
        assert patch.new_path is not None
        target = self.workspace.resolve(patch.new_path, write=True)
        if source is not None and target.parts == source.target.parts:
            return source
        destination = self._planned(target)
        if destination.text is not None:
            raise PatchError(f"{patch.new_path}: already exists")
        if source is not None:
            destination.mode_from = source.mode
        return destination

    def _planned(self, target: Target) -> _PlannedFile:
        planned = self.files.get(target.parts)
        if planned is None:
            planned = self._from_disk(target)
            self.files[target.parts] = planned
        return planned

    def _from_disk(self, target: Target) -> _PlannedFile:
        try:
            text, read = self.workspace.read_text(target)
        except ToolFailure as failure:
            if failure.code is not ToolCode.NOT_FOUND:
                raise
            return _PlannedFile(target, None, None, None, None)
        return _PlannedFile(target, text, text, read.stamp, read.mode)

    def changes(self) -> list[FileChange]:
        """One change per file whose content or mode the diff alters, in diff order."""
        return [
            FileChange(
                planned.target,
                None if planned.text is None else planned.text.encode("utf-8"),
                expect=planned.on_disk or "absent",
                mode_from=planned.mode_from,
                executable=planned.executable,
            )
            for planned in self.files.values()
            if planned.text != planned.original or planned.executable is not None
        ]
