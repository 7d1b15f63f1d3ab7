"""The one adapter between the bridge and the reference IDE's patch code: diff in, planned edits out.

Pure: the caller says how to read a file's current text (the editor's, through
`fs/read_text_file`), and gets back every file's old and new text without anything written.
ACP editors can only write text files, so a diff that deletes or renames a file is refused here
rather than half applied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ide_client.patch import PatchError, apply_hunks, parse_patch


@dataclass(frozen=True)
class PlannedEdit:
    """One file as a diff leaves it: `old_text` None when the diff creates it."""

    path: str
    old_text: str | None
    new_text: str


def plan_patch(diff: str, read_text: Callable[[str], str | None]) -> list[PlannedEdit]:
    """Every file `diff` changes, in diff order; PatchError when it does not fit the files.

    `read_text(path)` is the file's current text, None when it does not exist. A file patched
    twice in one diff gets the second patch applied to the first one's result.
    """
    planned: dict[str, PlannedEdit] = {}

    def current(path: str) -> str | None:
        earlier = planned.get(path)
        return earlier.new_text if earlier is not None else read_text(path)

    for file_patch in parse_patch(diff):
        source, path = file_patch.old_path, file_patch.new_path
        if path is None:
            raise PatchError(f"{source}: deleting files is not possible through the editor")
        if source not in (None, path) and not file_patch.copy:
            raise PatchError(f"{source}: renaming files is not possible through the editor")
        earlier = planned.get(path)
        old_text = earlier.old_text if earlier is not None else read_text(path)
        base = earlier.new_text if earlier is not None else old_text
        if source != path:
            if base is not None:
                raise PatchError(f"{path}: already exists")
            base = "" if source is None else current(source)
        if base is None:
            raise PatchError(f"{source}: no such file")
        planned[path] = PlannedEdit(path, old_text, apply_hunks(base, file_patch.hunks, path))
    return [edit for edit in planned.values() if edit.new_text != edit.old_text]
