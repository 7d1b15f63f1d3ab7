"""The files a diff leaves, computed from their current text: nothing is written here.

`plan_patch(diff, read)` is the one entry point an IDE needs (the reference IDE's
`apply_patch` and an ACP bridge alike): it reads each file it names once through `read`,
applies every hunk in memory, and returns the new state of every file the diff changes, or
raises PatchConflict with every refused hunk. The caller writes the result all or nothing.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ide_client.patch.matcher import patch_text
from ide_client.patch.model import Conflict, FilePatch, PatchConflict, PatchError
from ide_client.patch.unified import parse_unified
from ide_client.patch.v4a import is_v4a, parse_v4a

Reader = Callable[[str], str | None]
"""The current text of a workspace path, or None when no file is there (it may raise)."""


@dataclass(frozen=True)
class PlannedFile:
    """One file as the diff leaves it.

    `text` is its new content, None when the diff deletes it; `created` says it did not
    exist before; `source` is the path it was renamed or copied from (its mode goes with
    it); `executable` is the execute bit the diff sets, None to keep the current one.
    """

    path: str
    text: str | None
    created: bool
    executable: bool | None = None
    source: str | None = None

    @property
    def deleted(self) -> bool:
        return self.text is None


def parse_patch(diff: str) -> list[FilePatch]:
    """Every file patch of `diff`, unified or `*** Begin Patch`; PatchError if it has none."""
    patches = parse_v4a(diff) if is_v4a(diff) else parse_unified(diff)
    if not patches:
        raise PatchError(
            "no file changes found: expected a unified diff (as `git diff` writes it) or a "
            "`*** Begin Patch` patch"
        )
    return [_normalized(patch) for patch in patches]


def plan_patch(diff: str, read: Reader) -> list[PlannedFile]:
    """The files `diff` changes, each with its new text; PatchConflict if any hunk is refused."""
    return plan_file_patches(parse_patch(diff), read)


def plan_file_patches(patches: Sequence[FilePatch], read: Reader) -> list[PlannedFile]:
    """`plan_patch` for patches already parsed (to check their paths first)."""
    plan = _Plan(read)
    for patch in patches:
        plan.add(patch)
    if plan.conflicts:
        raise PatchConflict(tuple(plan.conflicts))
    return plan.result()


@dataclass
class _State:
    original: str | None
    text: str | None
    executable: bool | None = None
    source: str | None = None


class _Plan:
    def __init__(self, read: Reader) -> None:
        self.read = read
        self.files: dict[str, _State] = {}
        self.conflicts: list[Conflict] = []

    def state(self, path: str) -> _State:
        if path not in self.files:
            text = self.read(path)
            self.files[path] = _State(text, text)
        return self.files[path]

    def add(self, patch: FilePatch) -> None:
        source = self.state(patch.old_path) if patch.old_path is not None else None
        name = patch.new_path or patch.old_path or ""
        if source is not None and source.text is None:
            self.conflicts.append(Conflict("missing_file", name, "no such file"))
            return
        if patch.blind_delete:
            assert source is not None
            source.text = None
            return
        new_text, conflicts = patch_text(source.text or "" if source else "", patch.hunks, name)
        if conflicts or new_text is None:
            self.conflicts += conflicts
            return
        if patch.new_path is None:
            assert source is not None
            if new_text:
                self.conflicts.append(
                    Conflict(
                        "partial_delete", name, "the deletion does not remove the whole content"
                    )
                )
                return
            source.text = None
            return
        destination = self._destination(patch, source)
        if destination is None:
            return
        destination.text = new_text
        if source is not None and source is not destination and not patch.copy:
            source.text = None
        if patch.executable is not None:
            destination.executable = patch.executable

    def _destination(self, patch: FilePatch, source: _State | None) -> _State | None:
        assert patch.new_path is not None
        if source is not None and patch.new_path == patch.old_path:
            return source
        destination = self.state(patch.new_path)
        if destination.text is not None:
            self.conflicts.append(Conflict("already_exists", patch.new_path, "already exists"))
            return None
        destination.source = patch.old_path
        return destination

    def result(self) -> list[PlannedFile]:
        return [
            PlannedFile(path, state.text, state.original is None, state.executable, state.source)
            for path, state in self.files.items()
            if state.text != state.original or state.executable is not None
        ]


def _normalized(patch: FilePatch) -> FilePatch:
    """The patch with its paths in one spelling (`./a//b` is `a/b`), so each file has one key."""
    old = posixpath.normpath(patch.old_path) if patch.old_path is not None else None
    new = posixpath.normpath(patch.new_path) if patch.new_path is not None else None
    if (old, new) == (patch.old_path, patch.new_path):
        return patch
    return FilePatch(old, new, patch.hunks, patch.executable, patch.copy, patch.blind_delete)
