"""The IDE tools (read_file, write_file, git.diff, apply_patch, list_files, search) on one workspace.

`ToolRunner.run(tool, arguments)` validates the arguments with the wire models, runs the tool
and returns its `output`, or raises ToolFailure whose code and message become the
`tool_result` error; `ToolRunner.answer(call)` wraps that into the `tool_result` frame. Both
block (file system, git): call them off the event loop. Given a `CheckpointStore`, the write
tools keep a checkpoint of every file before they change it (see checkpoints.py).
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ValidationError

from ide_client.checkpoints import CheckpointStore
from ide_client.discovery import DEFAULT_SEARCH_TIMEOUT, SearchQuery, list_files, search
from ide_client.errors import ToolCode, ToolFailure
from ide_client.git import DEFAULT_GIT_TIMEOUT, git_diff
from ide_client.patch import PatchError, PlannedFile, parse_patch, plan_file_patches
from ide_client.repository import find_repository
from ide_client.workspace import FileChange, FileRead, Target, Workspace
from wire import (
    BY_IDE_NAME,
    ApplyPatchArguments,
    ErrorCode,
    GitDiffArguments,
    ListFilesArguments,
    ReadFileArguments,
    SearchArguments,
    ToolCall,
    ToolError,
    ToolResult,
    WriteFileArguments,
    validation_problems,
)

log = logging.getLogger(__name__)

IMPLEMENTED_TOOLS: tuple[str, ...] = (
    "read_file",
    "write_file",
    "git.diff",
    "apply_patch",
    "list_files",
    "search",
)
"""The tools `ToolRunner.run` runs: what this IDE declares in `hello.capabilities`."""


class ToolRunner:
    """Runs tool calls on one workspace, confined to it."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        git_timeout: float = DEFAULT_GIT_TIMEOUT,
        search_timeout: float = DEFAULT_SEARCH_TIMEOUT,
        checkpoints: CheckpointStore | None = None,
    ) -> None:
        self.workspace = workspace
        self.checkpoints = checkpoints
        self.git_timeout = git_timeout
        self.search_timeout = search_timeout

    def answer(self, call: ToolCall) -> ToolResult:
        """Run the call; its `tool_result`, an error result when the tool failed or crashed."""
        try:
            output = self.run(call.tool, call.arguments)
        except ToolFailure as failure:
            error = ToolError(code=failure.code, message=failure.message, details=failure.details)
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
        if isinstance(checked, ListFilesArguments):
            return list_files(self.workspace, checked.path, checked.pattern, checked.max_results)
        if isinstance(checked, SearchArguments):
            query = SearchQuery(**checked.model_dump())
            return search(self.workspace, query, timeout=self.search_timeout)
        raise ToolFailure(ToolCode.UNKNOWN_TOOL, f"tool {tool!r} is not implemented by this IDE")

    def read_file(self, arguments: ReadFileArguments) -> dict[str, Any]:
        """`{content}`: the whole file as UTF-8 text."""
        content, _ = self.workspace.read_text(self.workspace.resolve(arguments.path))
        return {"content": content}

    def write_file(self, arguments: WriteFileArguments) -> dict[str, Any]:
        """`{bytes_written}`: the file replaced (or created, with its directories) atomically."""
        target = self.workspace.resolve(arguments.path, write=True)
        data = arguments.content.encode("utf-8")
        self._commit([FileChange(target, data)])
        return {"bytes_written": len(data)}

    def git_diff(self, arguments: GitDiffArguments) -> dict[str, Any]:
        """`{diff}`: `git diff` (or `--cached` when staged) of the workspace or one path.

        Only in the repository the IDE finds above the workspace (a real `.git`), never one
        git would discover on its own.
        """
        pathspec = None
        if arguments.path is not None:
            pathspec = self.workspace.resolve(arguments.path).relative
        repository = find_repository(self.workspace.root)
        if repository is None:
            raise ToolFailure(
                ToolCode.NOT_A_GIT_REPO,
                "the workspace is not in a git repository (no .git in it or above it)",
            )
        diff = git_diff(
            repository,
            self.workspace.root,
            pathspec,
            staged=arguments.staged,
            max_bytes=self.workspace.max_file_bytes,
            timeout=self.git_timeout,
        )
        return {"diff": diff}

    def apply_patch(self, arguments: ApplyPatchArguments) -> dict[str, Any]:
        """`{files}`: every path the diff changed, after checking all of it against the files.

        Every path is checked before any file is read (written ones with `write=True`), the
        whole diff is planned in memory, and the changes are committed all or nothing, each
        guarded by the stamp of the file it was computed from.
        """
        patches = parse_patch(arguments.diff)
        targets: dict[str, Target] = {}
        for patch in patches:
            if patch.old_path is not None:
                targets[patch.old_path] = self.workspace.resolve(
                    patch.old_path, write=not patch.copy
                )
            if patch.new_path is not None:
                targets[patch.new_path] = self.workspace.resolve(patch.new_path, write=True)
        reads: dict[str, FileRead | None] = {}

        def read(path: str) -> str | None:
            try:
                text, reads[path] = self.workspace.read_text(targets[path])
            except ToolFailure as failure:
                if failure.code is not ToolCode.NOT_FOUND:
                    raise
                reads[path] = None
                return None
            return text

        planned = plan_file_patches(patches, read)
        changes = [self._change(file, targets, reads) for file in planned]
        if len({change.target.parts for change in changes}) < len(changes):
            raise PatchError("the diff names one file by two different paths")
        self._commit(changes)
        return {"files": [change.target.relative for change in changes]}

    def _commit(self, changes: list[FileChange]) -> None:
        """Write the changes all or nothing, after keeping a checkpoint of each file if asked."""
        if self.checkpoints is not None:
            self.checkpoints.commit(changes)
        else:
            self.workspace.commit(changes)

    def _change(
        self, file: PlannedFile, targets: dict[str, Target], reads: dict[str, FileRead | None]
    ) -> FileChange:
        """The workspace change for one planned file, guarded by what it was computed from."""
        target = targets[file.path]
        data = None if file.text is None else file.text.encode("utf-8")
        if data is not None:
            self.workspace.check_size(target, data)
        on_disk = reads.get(file.path)
        source = reads.get(file.source) if file.source is not None else None
        return FileChange(
            target,
            data,
            expect=on_disk.stamp if on_disk is not None else "absent",
            mode_from=source.mode if source is not None else None,
            executable=file.executable,
        )


def _validate(model: type[BaseModel], arguments: dict[str, Any]) -> BaseModel:
    try:
        return model.model_validate(arguments)
    except ValidationError as exc:
        raise ToolFailure(
            ToolCode.INVALID_ARGUMENTS, validation_problems(exc, "(arguments)")
        ) from None
