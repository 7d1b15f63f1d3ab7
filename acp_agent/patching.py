"""The one adapter between the bridge and the reference IDE's patch code: diff in, planned edits out.

Pure: the caller says how to read a file's current text (the editor's, through
`fs/read_text_file`), and gets back every file's old and new text without anything written.
ACP editors can only write text files, so a diff that deletes or renames a file is refused here
rather than half applied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ide_client import PatchError
from ide_client import plan_patch as plan_file_changes


@dataclass(frozen=True)
class PlannedEdit:
    """One file as a diff leaves it: `old_text` None when the diff creates it."""

    path: str
    old_text: str | None
    new_text: str


def plan_patch(diff: str, read_text: Callable[[str], str | None]) -> list[PlannedEdit]:
    """Every file `diff` changes, in diff order, planned by the reference IDE's tolerant patcher
    (unified diffs and `*** Begin Patch`); PatchError (a PatchConflict naming the refused hunks)
    when it does not fit the files. `read_text(path)` is the file's current text, None when it
    does not exist; each path is read once.
    """
    read: dict[str, str | None] = {}

    def current(path: str) -> str | None:
        if path not in read:
            read[path] = read_text(path)
        return read[path]

    edits = []
    for planned in plan_file_changes(diff, current):
        if planned.text is None:
            raise PatchError(
                f"{planned.path}: deleting or renaming files is not possible through the editor"
            )
        old_text = None if planned.created else current(planned.path)
        if planned.text != old_text:
            edits.append(PlannedEdit(planned.path, old_text, planned.text))
    return edits
