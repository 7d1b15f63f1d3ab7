"""What a parsed diff is, whatever its format: file patches made of hunks, and the refusals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ide_client.errors import ToolCode, ToolFailure

CONTEXT, REMOVED, ADDED = " ", "-", "+"
MAX_REPORTED = 20


class PatchError(ToolFailure):
    """The diff cannot be read, or does not fit the files it names."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(ToolCode.PATCH_FAILED, message, details)


@dataclass(frozen=True)
class HunkLine:
    """One line of a hunk: its tag (' ', '-', '+') and its text without the line ending.

    `newline` is False when `\\ No newline at end of file` follows the line.
    """

    tag: str
    text: str
    newline: bool = True


@dataclass(frozen=True)
class Hunk:
    """One block of change, located in the file by its context and removed lines.

    `old_start` is the 1-based line the header names (None when it names none); `anchors`
    are the lines the header says the hunk sits in (git's function context after `@@`,
    V4A's `@@ def f():` lines); `at_end` says the old lines end the file (V4A's
    `*** End of File`). `diff_line` is the header's line in the diff, for messages.
    `blank_tail` counts the empty context lines that end the hunk and may have been meant
    as separators: the hunk is located with them, and without them if it fits nowhere.
    """

    lines: tuple[HunkLine, ...]
    diff_line: int
    old_start: int | None = None
    anchors: tuple[str, ...] = ()
    at_end: bool = False
    blank_tail: int = 0

    @property
    def old(self) -> tuple[HunkLine, ...]:
        """The lines the hunk expects in the file: context and removed lines."""
        return tuple(line for line in self.lines if line.tag != ADDED)

    @property
    def new(self) -> tuple[HunkLine, ...]:
        """The lines the hunk leaves: context and added lines."""
        return tuple(line for line in self.lines if line.tag != REMOVED)

    def removes(self) -> bool:
        """Whether the hunk removes lines (rather than only adding some)."""
        return any(line.tag == REMOVED for line in self.lines)


@dataclass(frozen=True)
class FilePatch:
    """The change to one file: `old_path` None creates it, `new_path` None deletes it.

    `old_path != new_path` is a rename, or a copy when `copy` is set. `executable` is the new
    mode's execute bit when the diff names a mode, else None (keep). `blind_delete` deletes
    the file whatever it holds (V4A's `*** Delete File:` carries no content to check).
    """

    old_path: str | None
    new_path: str | None
    hunks: tuple[Hunk, ...]
    executable: bool | None = None
    copy: bool = False
    blind_delete: bool = False


@dataclass(frozen=True)
class Conflict:
    """Why one hunk (or one file) of a diff was refused, said for the model and as data.

    `kind`: context_mismatch, ambiguous, indentation, overlap, no_context, missing_file,
    already_exists or partial_delete. `line` is the 1-based file line of the first line
    that differs; `nearest` the closest region of the file as (line number, text) pairs.
    """

    kind: str
    path: str
    summary: str
    hunk: int | None = None
    diff_line: int | None = None
    line: int | None = None
    expected: str | None = None
    actual: str | None = None
    nearest: tuple[tuple[int, str], ...] = ()
    candidates: tuple[int, ...] = ()

    def describe(self) -> str:
        """The conflict as the model reads it: what differs, where, and the file's real text."""
        where = (
            f"{self.path}: hunk #{self.hunk} (diff line {self.diff_line})"
            if self.hunk
            else self.path
        )
        lines = [f"{where}: {self.summary}"]
        if self.line is not None:
            lines.append(
                f"  first difference at line {self.line}: the file has {self.actual!r} "
                f"where the hunk expects {self.expected!r}"
            )
        if self.candidates:
            shown = ", ".join(str(number) for number in self.candidates)
            lines.append(f"  it matches at lines {shown}")
        if self.nearest:
            first, last = self.nearest[0][0], self.nearest[-1][0]
            lines.append(f"  lines {first}-{last} of {self.path} as they are now:")
            width = len(str(last))
            lines += [f"    {number:>{width}} | {text}" for number, text in self.nearest]
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        """The same as `describe`, as JSON for an IDE (absent fields left out)."""
        data: dict[str, Any] = {"kind": self.kind, "path": self.path, "summary": self.summary}
        for name in ("hunk", "diff_line", "line", "expected", "actual"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        if self.nearest:
            data["nearest"] = [{"line": number, "text": text} for number, text in self.nearest]
        if self.candidates:
            data["candidates"] = list(self.candidates)
        return data


class PatchConflict(PatchError):
    """The diff does not fit the files: every refused hunk, each a `Conflict`. Nothing changed."""

    def __init__(self, conflicts: tuple[Conflict, ...]) -> None:
        self.conflicts = conflicts
        shown = conflicts[:MAX_REPORTED]
        message = "\n".join(conflict.describe() for conflict in shown)
        if len(conflicts) > len(shown):
            message += f"\n({len(conflicts) - len(shown)} more refused hunks not shown)"
        message += (
            "\nNothing was changed. Read the file again and rewrite the refused hunks "
            "against its current text, with enough context lines to be unique."
        )
        details = {
            "conflicts": [conflict.as_json() for conflict in shown],
            **({"more": len(conflicts) - len(shown)} if len(conflicts) > len(shown) else {}),
        }
        super().__init__(message, details)
