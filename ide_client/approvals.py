"""What the user sees and says when the agent asks to change a file (feature `approvals`).

The client calls the application's `ApprovalHandler` with each `approval_request` and sends
what it returns as the `approval` frame. `preview` is what the change would do, computed
without writing anything: for `apply_patch` the patch itself, for `write_file` the diff of
the new content against the file on disk (or the path and size of a new file). `read_answer`
reads a typed answer: `y`/`yes`, `a`/`always`, `n`/`no` with an optional reason after it.
"""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ide_client.errors import ToolCode, ToolFailure
from ide_client.workspace import Workspace
from wire import ApprovalRequest, Decision

QUESTION = "[y]es / [a]lways / [n]o (+ reason)"
_YES = frozenset({"y", "yes"})
_ALWAYS = frozenset({"a", "always"})
_NO = frozenset({"n", "no"})


@dataclass(frozen=True)
class ApprovalAnswer:
    """The user's decision on one call; `message` (with `reject`) reaches the model."""

    decision: Decision
    message: str | None = None
    end_turn: bool = False


ApprovalHandler = Callable[[ApprovalRequest], Awaitable[ApprovalAnswer]]
"""Asks the user about one write call; the client cancels it when the call is moot."""


@dataclass(frozen=True)
class Preview:
    """What a write call would change: a unified `diff`, or a `summary` when there is none."""

    summary: str
    diff: str | None


def preview(workspace: Workspace, request: ApprovalRequest) -> Preview:
    """The change `request` asks for, as the user should see it before answering."""
    arguments = request.arguments
    if request.tool == "apply_patch":
        diff = arguments.get("diff")
        return Preview("apply a patch", diff if isinstance(diff, str) else None)
    path = arguments.get("path")
    content = arguments.get("content")
    if request.tool != "write_file" or not isinstance(path, str) or not isinstance(content, str):
        return Preview(f"{request.tool} {arguments}", None)
    size = len(content.encode("utf-8"))
    try:
        before, _ = workspace.read_text(workspace.resolve(path))
    except ToolFailure as failure:
        if failure.code is ToolCode.NOT_FOUND:
            return Preview(f"create {path} ({size:,} bytes)", None)
        return Preview(f"overwrite {path} ({size:,} bytes; now: {failure.message})", None)
    return Preview(f"write {path} ({size:,} bytes)", text_diff(path, before, content))


def text_diff(path: str, before: str, after: str) -> str:
    """A unified diff of one file's text, each line ending in a newline."""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=f"a/{path}" if before else "/dev/null",
        tofile=f"b/{path}",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def read_answer(text: str) -> ApprovalAnswer | None:
    """A typed answer to `QUESTION`; None when it is none of them (ask again)."""
    word, _, rest = text.strip().partition(" ")
    word = word.lower()
    if word in _YES:
        return ApprovalAnswer(Decision.ALLOW_ONCE)
    if word in _ALWAYS:
        return ApprovalAnswer(Decision.ALLOW_TOOL)
    if word in _NO:
        return ApprovalAnswer(Decision.REJECT, rest.strip() or None)
    return None
