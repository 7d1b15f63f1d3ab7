"""The service's four tools, run through the editor: files over `fs/*`, git over `terminal/*`.

`EditorTools.answer(call)` is what the gateway client calls for each `tool_call`, on a worker
thread; the call itself runs as one coroutine on the event loop, so cancelling the turn cancels
whatever editor request it is waiting on. Edits are planned in memory first (old and new text),
shown to the user with `session/request_permission` unless the session's mode says otherwise,
and only then written with `fs/write_text_file`. A refusal reaches the model as a `declined`
tool error. Where the service asks for approval itself (feature `approvals`), its
`approval_request` is shown the same way (`ask_approval`) before any `tool_call`, and a call
the service approved is written without asking again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from acp import RequestError, tool_diff_content, tool_terminal_ref, update_tool_call
from acp.schema import (
    AllowedOutcome,
    EnvVariable,
    FileEditToolCallContent,
    PermissionOption,
    ToolCallLocation,
    ToolCallStatus,
    ToolCallUpdate,
)

from acp_agent.events import EventMapper
from acp_agent.link import EditorLink
from acp_agent.modes import EditDecision, EditPolicy
from acp_agent.offered import missing_capability
from acp_agent.patching import PlannedEdit, plan_patch
from acp_agent.presentation import message, tool_locations, tool_preview, tool_title
from ide_client import IdeClientError, PatchError, ToolCode, Workspace
from wire import (
    BY_IDE_NAME,
    AgentServiceError,
    ApplyPatchArguments,
    ApprovalRequest,
    GitDiffArguments,
    ReadFileArguments,
    ToolCall,
    ToolError,
    ToolErrorCode,
    ToolResult,
    WriteFileArguments,
)

log = logging.getLogger(__name__)

ALLOW_ONCE = "allow_once"
ALLOW_ALWAYS = "allow_always"
REJECT_ONCE = "reject_once"
REJECT_ALWAYS = "reject_always"
PERMISSION_OPTIONS = (
    PermissionOption(option_id=ALLOW_ONCE, name="Allow", kind="allow_once"),
    PermissionOption(
        option_id=ALLOW_ALWAYS, name="Allow edits for this session", kind="allow_always"
    ),
    PermissionOption(option_id=REJECT_ONCE, name="Reject", kind="reject_once"),
)
"""The options of an edit the bridge itself asks about (a service without approvals)."""
APPROVAL_OPTIONS = (
    PermissionOption(option_id=ALLOW_ONCE, name="Allow", kind="allow_once"),
    PermissionOption(
        option_id=ALLOW_ALWAYS, name="Always allow this tool in this session", kind="allow_always"
    ),
    PermissionOption(option_id=REJECT_ONCE, name="Reject", kind="reject_once"),
    PermissionOption(
        option_id=REJECT_ALWAYS, name="Reject, and make the session read-only", kind="reject_always"
    ),
)
"""The options of an `approval_request` the service sends (feature `approvals`)."""
RESOURCE_NOT_FOUND = -32002
# The output `git diff` would print in a terminal of the user's, made stable and parseable.
GIT_DIFF_ARGS = (
    "--no-pager",
    "diff",
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--src-prefix=a/",
    "--dst-prefix=b/",
    "--relative",
)
GIT_ENV = (
    EnvVariable(name="GIT_OPTIONAL_LOCKS", value="0"),
    EnvVariable(name="GIT_PAGER", value="cat"),
)
# Patch planning runs on threads of its own: the default pool's threads may all be waiting in
# `answer`, and a planner queued behind them would never run.
_PLANNERS = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="acp-patch")


class _TurnCancelled(AgentServiceError):
    """The user cancelled the turn while the call was waiting on them: send no result."""

    code = "cancelled"


class EditorTools:
    """Runs one session's tool calls through its editor."""

    def __init__(
        self,
        link: EditorLink,
        mapper: EventMapper,
        policy: EditPolicy,
        workspace: Workspace,
        offered: Sequence[str],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.link = link
        self.mapper = mapper
        self.policy = policy
        self.workspace = workspace
        self.offered = frozenset(offered)
        self._loop = loop
        self._lock = threading.Lock()
        self._running: concurrent.futures.Future[ToolResult | None] | None = None
        self._running_call: str | None = None
        self._cancelled = False
        self._one_question = asyncio.Lock()

    # ---- the gateway client's side (worker thread) ---------------------------------------

    def answer(self, call: ToolCall) -> ToolResult | None:
        """The call's `tool_result`, None when the turn was cancelled first. Blocks."""
        with self._lock:
            if self._cancelled:
                return None
            future = asyncio.run_coroutine_threadsafe(self.run(call), self._loop)
            self._running, self._running_call = future, call.call_id
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            return None
        finally:
            with self._lock:
                self._running, self._running_call = None, None

    # ---- the session's side (event loop) -------------------------------------------------

    def new_turn(self) -> None:
        """A prompt starts: calls run again."""
        with self._lock:
            self._cancelled = False

    def cancel(self) -> None:
        """The user cancelled: stop the running call and run no more this turn."""
        with self._lock:
            self._cancelled = True
            if self._running is not None:
                self._running.cancel()

    def abandon(self, call_id: str) -> None:
        """The service gave up on this call (it timed out): stop it, so nothing is written late."""
        with self._lock:
            if self._running is not None and self._running_call == call_id:
                self._running.cancel()

    async def ask_approval(self, request: ApprovalRequest) -> str | None:
        """Show an `approval_request` as a permission dialog with the diffs it would make;
        the option the user picked (`APPROVAL_OPTIONS`), None when the dialog was cancelled.

        Nothing is written: the files are read through the editor and the change planned in
        memory. When it cannot be planned (the patch does not fit, a path is refused), the
        dialog shows the raw arguments, and the call, if allowed, fails as it would anyway.
        Questions are asked one at a time, in the order the requests came.
        """
        async with self._one_question:
            return await self._ask_approval(request)

    async def _ask_approval(self, request: ApprovalRequest) -> str | None:
        try:
            edits = await self._planned(request.tool, request.arguments)
        except (IdeClientError, RequestError, PatchError, ValueError):
            edits = None
        if edits:
            paths = [self._absolute(edit.path, write=True) for edit in edits]
            content: list[Any] = [
                tool_diff_content(str(path), edit.new_text, edit.old_text)
                for path, edit in zip(paths, edits, strict=True)
            ]
            locations = [ToolCallLocation(path=str(path)) for path in paths]
            title = "Edit " + ", ".join(edit.path for edit in edits)
        else:
            content = tool_preview(request.tool, request.arguments) or message(
                f"{request.tool} {request.arguments}"
            )
            locations = tool_locations(request.tool, request.arguments, self.workspace.root)
            title = tool_title(request.tool, request.arguments)
        editor = await self.link.editor()
        question = ToolCallUpdate(
            tool_call_id=request.call_id,
            title=title,
            kind="edit",
            status="pending",
            content=content,
            locations=locations,
        )
        response = await editor.request_permission(
            self.link.session_id, question, list(APPROVAL_OPTIONS)
        )
        outcome = response.outcome
        return outcome.option_id if isinstance(outcome, AllowedOutcome) else None

    async def _planned(self, tool: str, arguments: dict[str, Any]) -> list[PlannedEdit]:
        """The edits a write call would make, planned from the editor's text of each file."""
        spec = BY_IDE_NAME.get(tool)
        if spec is None or tool not in self.offered:
            return []
        checked = spec.arguments.model_validate(arguments)
        if isinstance(checked, WriteFileArguments):
            path = self._absolute(checked.path, write=True)
            return [PlannedEdit(checked.path, await self._read_text(path), checked.content)]
        if isinstance(checked, ApplyPatchArguments):
            return await self._loop.run_in_executor(
                _PLANNERS, plan_patch, checked.diff, self._read_from_thread
            )
        return []

    async def run(self, call: ToolCall) -> ToolResult | None:
        """Run one call; an error result when it failed or was refused."""
        try:
            output = await self._dispatch(call)
        except _TurnCancelled:
            return None
        except IdeClientError as failure:
            self._settle(call.call_id, "failed", f"{failure.code}: {failure.message}")
            error = ToolError(code=failure.code, message=failure.message)
            return ToolResult(call_id=call.call_id, ok=False, error=error)
        except RequestError as exc:
            text = f"the editor refused the request: {exc}"
            self._settle(call.call_id, "failed", text)
            error = ToolError(code=ToolErrorCode.EDITOR_FAILED, message=text)
            return ToolResult(call_id=call.call_id, ok=False, error=error)
        except Exception as exc:
            log.exception("tool crashed", extra={"tool": call.tool, "call_id": call.call_id})
            text = f"{call.tool} crashed in the bridge: {exc}"
            self._settle(call.call_id, "failed", text)
            error = ToolError(code=ToolCode.TOOL_FAILED, message=text)
            return ToolResult(call_id=call.call_id, ok=False, error=error)
        return ToolResult(call_id=call.call_id, ok=True, output=output)

    async def _dispatch(self, call: ToolCall) -> dict[str, Any]:
        spec = BY_IDE_NAME.get(call.tool)
        if spec is None:
            raise IdeClientError(ToolCode.UNKNOWN_TOOL, f"unknown tool {call.tool!r}")
        if call.tool not in self.offered:
            raise IdeClientError(ToolErrorCode.UNSUPPORTED_BY_EDITOR, missing_capability(call.tool))
        try:
            arguments = spec.arguments.model_validate(call.arguments)
        except ValueError as exc:
            raise IdeClientError(ToolCode.INVALID_ARGUMENTS, str(exc)) from None
        if isinstance(arguments, ReadFileArguments):
            return await self._read_file(call, arguments)
        if isinstance(arguments, WriteFileArguments):
            return await self._write_file(call, arguments)
        if isinstance(arguments, ApplyPatchArguments):
            return await self._apply_patch(call, arguments)
        if isinstance(arguments, GitDiffArguments):
            return await self._git_diff(call, arguments)
        raise IdeClientError(ToolCode.UNKNOWN_TOOL, f"{call.tool} is not run by this bridge")

    # ---- the tools ------------------------------------------------------------------------

    async def _read_file(self, call: ToolCall, arguments: ReadFileArguments) -> dict[str, Any]:
        path = self._absolute(arguments.path)
        self.link.notify(update_tool_call(call.call_id, status="in_progress"))
        content = await self._read_text(path)
        if content is None:
            raise IdeClientError(ToolCode.NOT_FOUND, f"{arguments.path}: no such file")
        self._settle(call.call_id, "completed", None)
        return {"content": content}

    async def _write_file(self, call: ToolCall, arguments: WriteFileArguments) -> dict[str, Any]:
        path = self._absolute(arguments.path, write=True)
        edit = PlannedEdit(arguments.path, await self._read_text(path), arguments.content)
        await self._edit(call, [edit])
        return {"bytes_written": len(arguments.content.encode("utf-8"))}

    async def _apply_patch(self, call: ToolCall, arguments: ApplyPatchArguments) -> dict[str, Any]:
        edits = await self._loop.run_in_executor(
            _PLANNERS, plan_patch, arguments.diff, self._read_from_thread
        )
        if not edits:
            self._settle(call.call_id, "completed", "the diff changes nothing")
            return {"files": []}
        await self._edit(call, edits)
        return {"files": [self.workspace.resolve(edit.path, write=True).relative for edit in edits]}

    async def _git_diff(self, call: ToolCall, arguments: GitDiffArguments) -> dict[str, Any]:
        args = list(GIT_DIFF_ARGS)
        if arguments.staged:
            args.append("--cached")
        pathspec = self.workspace.resolve(arguments.path).relative if arguments.path else "."
        args += ["--", f":(literal){pathspec}" if arguments.path else pathspec]
        editor = await self.link.editor()
        session_id = self.link.session_id
        terminal = await editor.create_terminal(
            session_id,
            "git",
            args=args,
            env=list(GIT_ENV),
            cwd=str(self.workspace.root),
            output_byte_limit=self.workspace.max_file_bytes + 1,
        )
        shown = [tool_terminal_ref(terminal.terminal_id)]
        self.link.notify(update_tool_call(call.call_id, status="in_progress", content=shown))
        try:
            exit_status = await editor.wait_for_terminal_exit(session_id, terminal.terminal_id)
            output = await editor.terminal_output(session_id, terminal.terminal_id)
        finally:
            await editor.release_terminal(session_id, terminal.terminal_id)
        if exit_status.exit_code != 0:
            lines = output.output.strip().splitlines()
            last = lines[-1] if lines else f"exit {exit_status.exit_code or exit_status.signal}"
            code = (
                ToolCode.NOT_A_GIT_REPO
                if "not a git repository" in output.output
                else ToolCode.TOOL_FAILED
            )
            raise IdeClientError(code, f"git diff failed: {last}")
        if output.truncated:
            raise IdeClientError(
                ToolCode.TOO_LARGE,
                f"the diff is larger than the {self.workspace.max_file_bytes}-byte limit; "
                "ask for one path at a time",
            )
        self._settle(call.call_id, "completed", None, content=shown)
        return {"diff": output.output}

    # ---- edits ------------------------------------------------------------------------------

    async def _edit(self, call: ToolCall, edits: Sequence[PlannedEdit]) -> None:
        """Show the edits, get them allowed, write them (the earlier ones undone if one fails)."""
        paths = [self._absolute(edit.path, write=True) for edit in edits]
        diffs = [
            tool_diff_content(str(path), edit.new_text, edit.old_text)
            for path, edit in zip(paths, edits, strict=True)
        ]
        locations = [ToolCallLocation(path=str(path)) for path in paths]
        title = "Edit " + ", ".join(edit.path for edit in edits)
        decision = EditDecision.ALLOW if call.approval is not None else self.policy.decide()
        if decision is EditDecision.REFUSE:
            raise IdeClientError(
                ToolErrorCode.DECLINED, "the session is read-only: edits are refused"
            )
        if decision is EditDecision.ASK:
            await self._ask(call, title, diffs, locations)
        self.link.notify(
            update_tool_call(
                call.call_id, title=title, status="in_progress", content=diffs, locations=locations
            )
        )
        editor = await self.link.editor()
        written: list[tuple[Path, PlannedEdit]] = []
        try:
            for path, edit in zip(paths, edits, strict=True):
                await editor.write_text_file(self.link.session_id, str(path), edit.new_text)
                written.append((path, edit))
        except (RequestError, ConnectionError):
            await self._undo(written)
            raise
        self._settle(call.call_id, "completed", None, content=diffs)

    async def _ask(
        self,
        call: ToolCall,
        title: str,
        diffs: list[FileEditToolCallContent],
        locations: list[ToolCallLocation],
    ) -> None:
        editor = await self.link.editor()
        request = ToolCallUpdate(
            tool_call_id=call.call_id,
            title=title,
            kind="edit",
            status="pending",
            content=list(diffs),
            locations=locations,
        )
        response = await editor.request_permission(
            self.link.session_id, request, list(PERMISSION_OPTIONS)
        )
        outcome = response.outcome
        if not isinstance(outcome, AllowedOutcome):
            raise _TurnCancelled()
        if outcome.option_id == ALLOW_ALWAYS:
            self.policy.always_allowed = True
        elif outcome.option_id != ALLOW_ONCE:
            raise IdeClientError(ToolErrorCode.DECLINED, "the user declined this edit")

    async def _undo(self, written: Sequence[tuple[Path, PlannedEdit]]) -> None:
        editor = await self.link.editor()
        for path, edit in reversed(written):
            if edit.old_text is None:
                continue
            try:
                await editor.write_text_file(self.link.session_id, str(path), edit.old_text)
            except (RequestError, ConnectionError) as exc:
                log.warning(
                    "could not undo a partial edit", extra={"path": str(path), "error": str(exc)}
                )

    # ---- files ------------------------------------------------------------------------------

    def _absolute(self, path: str, *, write: bool = False) -> Path:
        """The checked absolute path of a workspace path (ToolFailure when it is refused)."""
        target = self.workspace.resolve(path, write=write)
        return self.workspace.root.joinpath(*target.parts)

    async def _read_text(self, path: Path) -> str | None:
        """The editor's current text of a file (unsaved changes included), None if it is missing."""
        editor = await self.link.editor()
        try:
            response = await editor.read_text_file(self.link.session_id, str(path))
        except RequestError as exc:
            if exc.code == RESOURCE_NOT_FOUND or not path.exists():
                return None
            raise
        if len(response.content.encode("utf-8")) > self.workspace.max_file_bytes:
            raise IdeClientError(
                ToolCode.TOO_LARGE,
                f"{path.name}: larger than the {self.workspace.max_file_bytes}-byte limit",
            )
        return response.content

    def _read_from_thread(self, path: str) -> str | None:
        """`_read_text` for the patch planner, which runs on a worker thread."""
        absolute = self._absolute(path, write=True)
        future = asyncio.run_coroutine_threadsafe(self._read_text(absolute), self._loop)
        return future.result()

    def _settle(
        self,
        call_id: str,
        status: ToolCallStatus,
        reason: str | None,
        *,
        content: Sequence[Any] | None = None,
    ) -> None:
        if not self.mapper.settle(call_id):
            return
        shown = list(content) if content is not None else (message(reason) if reason else None)
        self.link.notify(update_tool_call(call_id, status=status, content=shown))
