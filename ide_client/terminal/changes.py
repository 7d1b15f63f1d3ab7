"""The diff of every change a tool call makes, so the terminal can show it after the call.

`ChangeRecorder` wraps the tool runner: for `apply_patch` the diff is the patch that was
applied; for `write_file` it is computed from the file's text before and after the write.
"""

from __future__ import annotations

from typing import Any

from ide_client.approvals import text_diff
from ide_client.errors import ToolFailure
from ide_client.tools import ToolRunner
from wire import ToolCall, ToolResult

CHANGING_TOOLS = frozenset({"apply_patch", "write_file"})


class ChangeRecorder:
    """A `ToolAnswerer` that runs calls with `runner` and keeps the diff of each change by call id."""

    def __init__(self, runner: ToolRunner) -> None:
        self.runner = runner
        self._diffs: dict[str, str] = {}

    def answer(self, call: ToolCall) -> ToolResult:
        """Run the call; remember the diff of the change it made, if it made one."""
        before = self._text_before(call) if call.tool == "write_file" else None
        result = self.runner.answer(call)
        if result.ok and call.tool in CHANGING_TOOLS:
            self._diffs[call.call_id] = _diff_of(call.arguments, before)
        return result

    def diff_for(self, call_id: str) -> str | None:
        """The diff of the change call `call_id` made (once: it is forgotten after)."""
        return self._diffs.pop(call_id, None)

    def workspace_diff(self) -> str:
        """`git diff` of the whole workspace, through the same tool the agent uses."""
        output = self.runner.run("git.diff", {})
        return str(output.get("diff", ""))

    def _text_before(self, call: ToolCall) -> str:
        path = call.arguments.get("path")
        if not isinstance(path, str):
            return ""
        try:
            return str(self.runner.run("read_file", {"path": path}).get("content", ""))
        except ToolFailure:
            return ""


def _diff_of(arguments: dict[str, Any], before: str | None) -> str:
    if before is None:
        return str(arguments.get("diff", ""))
    return text_diff(str(arguments.get("path", "")), before, str(arguments.get("content", "")))
