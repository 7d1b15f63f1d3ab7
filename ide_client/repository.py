"""Which git repository a workspace belongs to, found by the IDE itself, never by git.

Git's own discovery also accepts a *bare* repository: any directory holding `HEAD` and
`objects/` and `refs/` (or `HEAD` and a `commondir` file) is one, and its `config` is obeyed.
Files a model writes could make the workspace look like that. So the IDE walks up from the
workspace for a real `.git` (a directory, or a `gitdir:` file as in worktrees and
submodules) and hands git that repository explicitly; a directory that only looks like a git
directory is never used, and is what `looks_like_git_dir` recognises so that nothing can
build one.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

DOT_GIT = ".git"
# The entries git's `is_git_directory` looks for (setup.c): HEAD plus objects/ and refs/,
# or HEAD plus a commondir file naming where those are.
GIT_DIR_MARKERS = ("HEAD", "objects", "refs", "commondir")
_GITFILE_PREFIX = "gitdir:"
_GITFILE_MAX_BYTES = 4096


@dataclass(frozen=True)
class Repository:
    """A non-bare repository: its work tree, its git directory, and the common directory
    (where config, hooks, objects and refs live; the git directory itself except in linked
    worktrees)."""

    work_tree: Path
    git_dir: Path
    common_dir: Path


def find_repository(start: Path) -> Repository | None:
    """The repository whose work tree holds `start`: the nearest `.git` at or above it."""
    directory = Path(os.path.realpath(start))
    while True:
        git_dir = _git_dir_of(directory / DOT_GIT)
        if git_dir is not None:
            return Repository(directory, git_dir, _common_dir(git_dir))
        if directory.parent == directory:
            return None
        directory = directory.parent


def looks_like_git_dir(entries: Collection[str]) -> bool:
    """Whether a directory with these entries (from GIT_DIR_MARKERS) is one git would use."""
    present = set(entries)
    return "HEAD" in present and ({"objects", "refs"} <= present or "commondir" in present)


def _git_dir_of(dot_git: Path) -> Path | None:
    """The git directory a `.git` entry stands for, if it is a usable one."""
    if dot_git.is_dir():
        candidate = dot_git
    elif dot_git.is_file():
        target = _read_gitfile(dot_git)
        if target is None:
            return None
        candidate = dot_git.parent / target
    else:
        return None
    real = Path(os.path.realpath(candidate))
    present = [name for name in GIT_DIR_MARKERS if (real / name).exists()]
    return real if looks_like_git_dir(present) else None


def _read_gitfile(path: Path) -> str | None:
    try:
        with path.open("rb") as file:
            text = file.read(_GITFILE_MAX_BYTES).decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    first_line = text.splitlines()[0] if text else ""
    if not first_line.startswith(_GITFILE_PREFIX):
        return None
    return first_line[len(_GITFILE_PREFIX) :].strip() or None


def _common_dir(git_dir: Path) -> Path:
    try:
        named = (git_dir / "commondir").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return git_dir
    return Path(os.path.realpath(git_dir / named)) if named else git_dir
