"""The discovery tools, `list_files` and `search`: the workspace as git sees it, bounded.

Rules this module lives by:
- The directory asked for goes through `Workspace.resolve` like every tool path, and the
  walk below it opens one directory descriptor at a time with O_NOFOLLOW (via
  `Workspace.open_directory`): a directory swapped for a symlink is not entered.
- Symbolic links are neither listed nor followed, so nothing outside the root is ever
  named, sized or read. Every file `search` reads is resolved and read through the
  workspace, with its size limit.
- What `.gitignore` (any level) or `.git/info/exclude` ignores is left out, and `.git` too.
- Everything is bounded: entries visited, results returned, bytes read, and time; a bound
  reached gives `truncated: true`, never an endless call. A regular expression that runs
  too long (catastrophic backtracking) fails with `timeout`.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import regex

from ide_client.errors import ToolCode, ToolFailure
from ide_client.ignore import IgnoreRules, glob_matcher
from ide_client.workspace import Target, Workspace

DEFAULT_SEARCH_TIMEOUT = 10.0
MAX_VISITED = 50_000
MAX_SEARCHED_BYTES = 64 * 1024 * 1024
MAX_LINE_CHARS = 300
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_BINARY_PROBE = 8192


@dataclass(frozen=True)
class FoundFile:
    """A regular file of the workspace: its path relative to the root, and its size in bytes."""

    path: str
    size: int


class WorkspaceFiles:
    """Walks a directory of the workspace, ignored paths and symlinks left out, in name order."""

    def __init__(self, workspace: Workspace, *, max_visited: int = MAX_VISITED) -> None:
        self.workspace = workspace
        self.max_visited = max_visited
        self.truncated = False

    def walk(self, target: Target) -> Iterator[FoundFile]:
        """Every file under the checked directory `target`; sets `truncated` at the bound."""
        rules = IgnoreRules()
        self._load(rules, ".git/info/exclude", "")
        for depth in range(len(target.parts)):
            self._load_gitignore(rules, target.parts[:depth])
        visited = [0]
        with self.workspace.open_directory(target) as fd:
            yield from self._walk(fd, target.parts, rules, visited)

    def _walk(
        self, fd: int, parts: tuple[str, ...], rules: IgnoreRules, visited: list[int]
    ) -> Iterator[FoundFile]:
        self._load_gitignore(rules, parts)
        with os.scandir(fd) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
        for entry in entries:
            visited[0] += 1
            if visited[0] > self.max_visited:
                self.truncated = True
                return
            path = "/".join((*parts, entry.name))
            if entry.is_dir(follow_symlinks=False):
                if rules.ignored(path, is_dir=True):
                    continue
                try:
                    child = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
                except OSError:
                    continue
                try:
                    yield from self._walk(child, (*parts, entry.name), rules, visited)
                finally:
                    os.close(child)
                if self.truncated:
                    return
            elif entry.is_file(follow_symlinks=False) and not rules.ignored(path, is_dir=False):
                yield FoundFile(path, entry.stat(follow_symlinks=False).st_size)

    def _load_gitignore(self, rules: IgnoreRules, parts: tuple[str, ...]) -> None:
        directory = "/".join(parts)
        self._load(rules, f"{directory}/.gitignore" if directory else ".gitignore", directory)

    def _load(self, rules: IgnoreRules, path: str, directory: str) -> None:
        """Add the rules of one ignore file, if there is a readable one there."""
        try:
            text, _ = self.workspace.read_text(self.workspace.resolve(path))
        except ToolFailure:
            return
        rules.add(directory, text)


def list_files(
    workspace: Workspace, path: str, pattern: str | None, max_results: int
) -> dict[str, Any]:
    """`{files: [{path, size}], truncated}`: the files under `path` that match `pattern`."""
    target = workspace.resolve(path)
    walker = WorkspaceFiles(workspace)
    matches = glob_matcher(pattern).match_file if pattern else None
    files: list[dict[str, Any]] = []
    truncated = False
    for found in walker.walk(target):
        if matches is not None and not matches(found.path):
            continue
        if len(files) == max_results:
            truncated = True
            break
        files.append({"path": found.path, "size": found.size})
    return {"files": files, "truncated": truncated or walker.truncated}


@dataclass(frozen=True)
class SearchQuery:
    """What `search` looks for, and where."""

    query: str
    regex: bool
    ignore_case: bool
    path: str
    glob: str | None
    max_results: int


def search(
    workspace: Workspace, query: SearchQuery, *, timeout: float = DEFAULT_SEARCH_TIMEOUT
) -> dict[str, Any]:
    """`{matches: [{path, line, text}], truncated}`: lines of text files that match."""
    deadline = time.monotonic() + timeout
    matches_line = _line_matcher(query, deadline)
    target = workspace.resolve(query.path)
    in_glob = glob_matcher(query.glob).match_file if query.glob else None
    walker = WorkspaceFiles(workspace)
    found: list[dict[str, Any]] = []
    searched = 0
    truncated = False
    for file in _files(workspace, walker, target):
        if in_glob is not None and not in_glob(file.path):
            continue
        if file.size > workspace.max_file_bytes or time.monotonic() > deadline:
            truncated |= time.monotonic() > deadline
            continue
        text = _text(workspace, file.path)
        if text is None:
            continue
        searched += len(text)
        for number, line in enumerate(text.splitlines(), 1):
            if not matches_line(line):
                continue
            if len(found) == query.max_results:
                return {"matches": found, "truncated": True}
            found.append({"path": file.path, "line": number, "text": line[:MAX_LINE_CHARS]})
        if searched > MAX_SEARCHED_BYTES:
            truncated = True
            break
    return {"matches": found, "truncated": truncated or walker.truncated}


def _files(workspace: Workspace, walker: WorkspaceFiles, target: Target) -> Iterator[FoundFile]:
    """The one file `target` names, or every file under the directory it names."""
    try:
        st = os.stat(workspace.root / target.relative, follow_symlinks=False)
    except FileNotFoundError:
        raise ToolFailure(
            ToolCode.NOT_FOUND, f"{target.asked}: no such file or directory"
        ) from None
    if stat.S_ISREG(st.st_mode):
        yield FoundFile(target.relative, st.st_size)
    else:
        yield from walker.walk(target)


def _text(workspace: Workspace, path: str) -> str | None:
    """The file as text, read through the workspace; None for binary, unreadable or gone files."""
    try:
        data = workspace.read(workspace.resolve(path)).data
    except ToolFailure:
        return None
    if b"\0" in data[:_BINARY_PROBE]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _line_matcher(query: SearchQuery, deadline: float) -> Callable[[str], bool]:
    """A test for one line: plain text or a regular expression, under the call's deadline."""
    if not query.regex:
        needle = query.query.casefold() if query.ignore_case else query.query
        if query.ignore_case:
            return lambda line: needle in line.casefold()
        return lambda line: needle in line
    try:
        pattern = regex.compile(query.query, regex.IGNORECASE if query.ignore_case else 0)
    except regex.error as exc:
        raise ToolFailure(
            ToolCode.INVALID_ARGUMENTS, f"query: not a valid regular expression ({exc})"
        ) from None

    def matches(line: str) -> bool:
        try:
            return pattern.search(line, timeout=max(deadline - time.monotonic(), 0.001)) is not None
        except TimeoutError:
            raise ToolFailure(
                ToolCode.TIMEOUT,
                "the regular expression took too long (nested repetition such as (a+)+ "
                "backtracks without end); simplify it or search for plain text",
            ) from None

    return matches
