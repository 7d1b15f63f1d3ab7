"""Writes that git would take as repository metadata, hooks or configuration are refused.

Git runs programs named by a repository's configuration (core.fsmonitor, filters, hooks...)
and runs the hooks it finds. The IDE's own git calls never do (see git.py), but the user's
git later would. So a tool may not write:
- anything that completes a git directory look-alike: in any directory, a `HEAD`, `objects`,
  `refs` or `commondir` entry that would leave the directory with `HEAD` and `objects/` and
  `refs/` (or `HEAD` and `commondir`), the layout git accepts as a bare repository; nor
  anything inside a directory that already has that layout;
- anything in the git directory or common directory of the repository the file would belong
  to (the workspace's, or one nested in it; a `.git` file may point outside `.git/`);
- anything in a hook directory `core.hooksPath` names (with husky's `.husky/_`, all of
  `.husky/`, whose scripts those hooks run), or a configuration file an `include.path` or
  `includeIf.*.path` pulls in.

Ordinary files named `config`, `HEAD` or `refs` elsewhere are fine: only the layout matters.
"""

from __future__ import annotations

import os
from pathlib import Path

from ide_client.errors import ToolCode, ToolFailure
from ide_client.git import git_managed_paths
from ide_client.repository import GIT_DIR_MARKERS, find_repository, looks_like_git_dir

# Code points HFS+ ignores when it compares names (git's is_hfs_dotgit list), so that
# `.g\u200cit` is `.git` there; NTFS ignores trailing dots and spaces.
_IGNORED_IN_NAMES = dict.fromkeys(
    map(
        ord,
        "\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
        "\u206a\u206b\u206c\u206d\u206e\u206f\ufeff",
    )
)


def comparable_name(name: str) -> str:
    """A file name as a case-insensitive, HFS+ or NTFS file system would compare it."""
    return name.translate(_IGNORED_IN_NAMES).rstrip(" .").casefold() or name


_MARKER_BY_FOLDED = {comparable_name(name): name for name in GIT_DIR_MARKERS}


def refuse_git_metadata(root: Path, parts: tuple[str, ...], asked: str) -> None:
    """Raise `protected_path` if writing `root/parts` would plant git metadata or hooks."""
    _refuse_git_dir_layout(root, parts, asked)
    repository = find_repository(root.joinpath(*parts[:-1]))
    if repository is None:
        return
    real = Path(os.path.realpath(root.joinpath(*parts)))
    managed = git_managed_paths(repository)
    for directory in (repository.git_dir, repository.common_dir, *managed.directories):
        if real == directory or directory in real.parents:
            raise ToolFailure(
                ToolCode.PROTECTED_PATH,
                f"{asked}: git keeps its repository data or hooks in {directory}; "
                "writing there is refused",
            )
    if real in managed.files:
        raise ToolFailure(
            ToolCode.PROTECTED_PATH,
            f"{asked}: git reads this file as configuration (include.path); writing it is refused",
        )


def _refuse_git_dir_layout(root: Path, parts: tuple[str, ...], asked: str) -> None:
    for depth, child in enumerate(parts):
        directory = root.joinpath(*parts[:depth])
        present = {name for name in GIT_DIR_MARKERS if os.path.lexists(directory / name)}
        marker = _MARKER_BY_FOLDED.get(comparable_name(child))
        if marker is not None:
            present.add(marker)
        if looks_like_git_dir(present):
            where = "/".join(parts[:depth]) or "the workspace root"
            raise ToolFailure(
                ToolCode.PROTECTED_PATH,
                f"{asked}: {where} would be (or is) laid out like a git directory "
                "(HEAD with objects/ and refs/, or with commondir), which git would obey; "
                "writing it is refused",
            )
