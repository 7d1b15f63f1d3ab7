"""Workspace confinement: every tool path is checked, then opened, inside one root directory.

Rules this module lives by:
- A tool path is relative to the root. Absolute paths and `..` that leave the root are refused.
- The path is resolved with its symlinks (realpath) and must stay under the root's realpath;
  a symlink pointing outside is refused.
- What was checked is what is opened: the resolved path is walked from the root with one
  directory descriptor per component, every component opened with O_NOFOLLOW. A symlink
  swapped in after the check makes the open fail instead of leading outside.
- Writes go to a temporary file in the checked directory, renamed over the checked name; a
  rename replaces a symlink, it never follows it.
- Nothing is ever written under `.git/` or under the agent's own configuration directory
  `.agent-service/`, at any depth, nor anywhere git would take as repository metadata, hooks
  or configuration (see git_guard.py).
- A name the file system cannot hold (over NAME_MAX bytes, a path over PATH_MAX, a string
  that has no file-system encoding) is refused as `invalid_arguments` before anything opens it.
- `commit` applies a set of changes all or nothing: temp files first, then renames, rolled back
  if any step fails.

POSIX only (it needs `dir_fd` support in `os`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import secrets
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ide_client.errors import IdeClientError, ToolCode, ToolFailure
from ide_client.git_guard import comparable_name, refuse_git_metadata

AGENT_CONFIG_DIR = ".agent-service"
PROTECTED_NAMES = frozenset({".git", AGENT_CONFIG_DIR})
DEFAULT_MAX_FILE_BYTES = 1024 * 1024
_FALLBACK_NAME_MAX = 255
_FALLBACK_PATH_MAX = 4096

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class Target:
    """A checked path: `parts` are its components under the root, with every symlink resolved."""

    asked: str
    parts: tuple[str, ...]

    @property
    def relative(self) -> str:
        """The resolved path relative to the root, '/'-separated ('.' for the root itself)."""
        return "/".join(self.parts) or "."


@dataclass(frozen=True)
class FileStamp:
    """Identity and version of a file on disk, to notice that it changed between read and write."""

    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileStamp:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class FileRead:
    """A file's bytes with the stamp and permission bits they were read under."""

    data: bytes
    stamp: FileStamp
    mode: int


@dataclass(frozen=True)
class FileChange:
    """One file to write (`data`) or delete (`data is None`) in a `commit`.

    `expect` guards against concurrent edits: a stamp (the file must still be that one),
    "absent" (it must not exist) or "any". Permission bits are kept for an existing file, taken
    from `mode_from` for a new one (a rename), else the umask default; `executable` then sets or
    clears the execute bits.
    """

    target: Target
    data: bytes | None
    expect: FileStamp | Literal["absent", "any"] = "any"
    mode_from: int | None = None
    executable: bool | None = None


class Workspace:
    """The directory tools run in; every path a tool names goes through `resolve` first."""

    def __init__(
        self, root: str | os.PathLike[str], *, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    ) -> None:
        real = os.path.realpath(root)
        if not os.path.isdir(real):
            raise IdeClientError(
                "bad_workspace", f"workspace {os.fspath(root)!r} is not a directory"
            )
        self.root = Path(real)
        self.max_file_bytes = max_file_bytes
        self._name_max = _path_limit(real, "PC_NAME_MAX", _FALLBACK_NAME_MAX)
        self._path_max = _path_limit(real, "PC_PATH_MAX", _FALLBACK_PATH_MAX)

    # ---- the check ---------------------------------------------------------------------

    def resolve(self, path: str, *, write: bool = False) -> Target:
        """Check `path` and return where it really points; raise ToolFailure if it is refused.

        With `write`, paths under `.git/` or `.agent-service/`, and git metadata, hooks or
        configuration (git_guard.py), are refused as well.
        """
        if not path or "\0" in path:
            raise ToolFailure(ToolCode.INVALID_ARGUMENTS, f"invalid path {path!r}")
        self._check_length(path)
        if posixpath.isabs(path) or os.path.isabs(path):
            raise ToolFailure(
                ToolCode.OUTSIDE_WORKSPACE,
                f"{path}: absolute paths are refused, use a path relative to the workspace root",
            )
        lexical = posixpath.normpath(path)
        if lexical == ".." or lexical.startswith("../"):
            raise ToolFailure(ToolCode.OUTSIDE_WORKSPACE, f"{path}: '..' leaves the workspace")
        real = os.path.realpath(os.path.join(self.root, path))
        root = str(self.root)
        if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
            raise ToolFailure(
                ToolCode.OUTSIDE_WORKSPACE, f"{path}: resolves to a location outside the workspace"
            )
        relative = os.path.relpath(real, root)
        target = Target(path, () if relative == "." else tuple(relative.split(os.sep)))
        if write:
            for parts in (lexical.split("/"), target.parts):
                if any(comparable_name(part) in PROTECTED_NAMES for part in parts):
                    raise ToolFailure(
                        ToolCode.PROTECTED_PATH,
                        f"{path}: writing under .git/ or {AGENT_CONFIG_DIR}/ is refused",
                    )
            refuse_git_metadata(self.root, target.parts, path)
        return target

    def _check_length(self, path: str) -> None:
        """Refuse what the file system cannot name, with the limit, instead of an OSError."""
        try:
            encoded = os.fsencode(path)
        except UnicodeEncodeError:
            raise ToolFailure(
                ToolCode.INVALID_ARGUMENTS, f"{path!r}: not a name the file system can encode"
            ) from None
        for name in encoded.split(b"/"):
            if len(name) > self._name_max:
                shown = os.fsdecode(name)[:40]
                raise ToolFailure(
                    ToolCode.INVALID_ARGUMENTS,
                    f"{path[:80]}: the name {shown!r}... is {len(name)} bytes; "
                    f"the file system allows {self._name_max}",
                )
        if len(os.path.join(os.fsencode(self.root), encoded)) >= self._path_max:
            raise ToolFailure(
                ToolCode.INVALID_ARGUMENTS,
                f"{path[:80]}...: the path is over the file system's {self._path_max}-byte limit",
            )

    # ---- the use -----------------------------------------------------------------------

    def read(self, target: Target) -> FileRead:
        """Read a checked regular file (at most `max_file_bytes`)."""
        name = _file_name(target)
        with self._directory(target) as dir_fd:
            try:
                fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
            except FileNotFoundError:
                raise ToolFailure(ToolCode.NOT_FOUND, f"{target.asked}: no such file") from None
            except OSError as exc:
                raise _refusal(exc, dir_fd, name, target) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ToolFailure(ToolCode.NOT_A_FILE, f"{target.asked}: not a regular file")
            data = _read_at_most(fd, self.max_file_bytes + 1)
        finally:
            os.close(fd)
        if len(data) > self.max_file_bytes:
            raise ToolFailure(
                ToolCode.TOO_LARGE,
                f"{target.asked}: larger than the {self.max_file_bytes}-byte limit",
            )
        return FileRead(data, FileStamp.of(st), stat.S_IMODE(st.st_mode))

    def read_text(self, target: Target) -> tuple[str, FileRead]:
        """Read a checked file as UTF-8 text."""
        read = self.read(target)
        try:
            return read.data.decode("utf-8"), read
        except UnicodeDecodeError:
            raise ToolFailure(ToolCode.NOT_TEXT, f"{target.asked}: not UTF-8 text") from None

    def check_size(self, target: Target, data: bytes) -> None:
        """Refuse content over the file size limit before anything is written."""
        if len(data) > self.max_file_bytes:
            raise ToolFailure(
                ToolCode.TOO_LARGE,
                f"{target.asked}: {len(data)} bytes exceed the {self.max_file_bytes}-byte limit",
            )

    def commit(self, changes: Sequence[FileChange]) -> None:
        """Apply every change or none of them (each target must come from `resolve(write=True)`)."""
        for change in changes:
            if change.data is not None:
                self.check_size(change.target, change.data)
        with _Transaction(self) as transaction:
            for change in changes:
                transaction.prepare(change)
            transaction.swap_in()

    @contextlib.contextmanager
    def open_directory(self, target: Target) -> Iterator[int]:
        """A descriptor of the checked directory `target`, reached without following a symlink."""
        with self._directory(Target(target.asked, (*target.parts, "."))) as fd:
            yield fd

    @contextlib.contextmanager
    def _directory(
        self, target: Target, *, created: list[tuple[int, str]] | None = None
    ) -> Iterator[int]:
        """A descriptor of the target's parent directory, reached without following any symlink.

        With `created` (a list), missing directories are made and recorded there as
        (descriptor of their parent, name); the caller closes those descriptors.
        """
        fd = os.open(self.root, _DIR_FLAGS)
        try:
            for name in target.parts[:-1]:
                child = _open_subdirectory(fd, name, target, created)
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)


@dataclass
class _Staged:
    change: FileChange
    dir_fd: int
    name: str
    temp: str | None = None
    backup: str | None = None
    placed: bool = False


@dataclass
class _Transaction:
    """The moves of one `commit`, recorded so that a failure can undo them."""

    workspace: Workspace
    staged: list[_Staged] = field(default_factory=list)
    created_dirs: list[tuple[int, str]] = field(default_factory=list)
    open_fds: list[int] = field(default_factory=list)

    def __enter__(self) -> _Transaction:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc is not None:
                self._roll_back()
            else:
                for item in self.staged:
                    if item.backup:
                        _unlink_quietly(item.dir_fd, item.backup)
        finally:
            for fd in self.open_fds:
                os.close(fd)
            for fd, _ in self.created_dirs:
                os.close(fd)

    def prepare(self, change: FileChange) -> None:
        """Check the target is still as expected and write its new content to a temp file."""
        target = change.target
        name = _file_name(target)
        creating = change.data is not None
        with self.workspace._directory(
            target, created=self.created_dirs if creating else None
        ) as dir_fd:
            kept = os.dup(dir_fd)
        self.open_fds.append(kept)
        item = _Staged(change, kept, name)
        self.staged.append(item)
        current = _lstat(kept, name)
        if current is not None and stat.S_ISLNK(current.st_mode):
            raise _swapped(target, name)
        if current is not None and not stat.S_ISREG(current.st_mode):
            raise ToolFailure(ToolCode.NOT_A_FILE, f"{target.asked}: not a regular file")
        _check_expected(change, current)
        if change.data is not None:
            base = current.st_mode if current is not None else change.mode_from
            item.temp = _write_temp(kept, name, change.data, base, change.executable)

    def swap_in(self) -> None:
        """Move every original aside and every temp file into place."""
        for item in self.staged:
            if _lstat(item.dir_fd, item.name) is not None:
                item.backup = f".{item.name}.{secrets.token_hex(6)}.orig"
                os.rename(item.name, item.backup, src_dir_fd=item.dir_fd, dst_dir_fd=item.dir_fd)
            if item.temp is not None:
                os.rename(item.temp, item.name, src_dir_fd=item.dir_fd, dst_dir_fd=item.dir_fd)
                item.temp = None
                item.placed = True

    def _roll_back(self) -> None:
        for item in reversed(self.staged):
            if item.placed:
                _unlink_quietly(item.dir_fd, item.name)
            if item.backup:
                os.rename(item.backup, item.name, src_dir_fd=item.dir_fd, dst_dir_fd=item.dir_fd)
            if item.temp:
                _unlink_quietly(item.dir_fd, item.temp)
        for parent, name in reversed(self.created_dirs):
            with contextlib.suppress(OSError):
                os.rmdir(name, dir_fd=parent)


def _path_limit(root: str, name: str, fallback: int) -> int:
    try:
        return os.pathconf(root, name)
    except (OSError, ValueError):
        return fallback


def _file_name(target: Target) -> str:
    if not target.parts:
        raise ToolFailure(ToolCode.NOT_A_FILE, f"{target.asked}: is the workspace root")
    return target.parts[-1]


def _open_subdirectory(
    parent: int, name: str, target: Target, created: list[tuple[int, str]] | None
) -> int:
    """Open directory `name` under `parent` without following a symlink, making it if asked."""
    try:
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if created is None:
                raise ToolFailure(
                    ToolCode.NOT_FOUND, f"{target.asked}: directory {name!r} does not exist"
                ) from None
        os.mkdir(name, dir_fd=parent)
        created.append((os.dup(parent), name))
        return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except OSError as exc:
        raise _refusal(exc, parent, name, target) from None


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, min(limit - size, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _check_expected(change: FileChange, current: os.stat_result | None) -> None:
    asked = change.target.asked
    if change.expect == "absent" and current is not None:
        raise ToolFailure(ToolCode.PATCH_FAILED, f"{asked}: already exists")
    if isinstance(change.expect, FileStamp) and (
        current is None or FileStamp.of(current) != change.expect
    ):
        raise ToolFailure(ToolCode.PATCH_FAILED, f"{asked}: changed on disk while being patched")


def _write_temp(
    dir_fd: int, name: str, data: bytes, base_mode: int | None, executable: bool | None
) -> str:
    """Write `data` to a new temp file next to `name` with the right permission bits."""
    temp = f".{name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(temp, _TEMP_FLAGS, 0o666, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            mode = stat.S_IMODE(base_mode if base_mode is not None else os.fstat(fd).st_mode)
            if executable is True:
                mode |= (mode & 0o444) >> 2
            elif executable is False:
                mode &= ~0o111
            os.fchmod(fd, mode)
    except BaseException:
        _unlink_quietly(dir_fd, temp)
        raise
    return temp


def _unlink_quietly(dir_fd: int, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)


def _refusal(exc: OSError, dir_fd: int, name: str, target: Target) -> ToolFailure:
    """Turn a failed open under `dir_fd` into the refusal a tool reports."""
    entry = _lstat(dir_fd, name)
    if entry is not None and stat.S_ISLNK(entry.st_mode):
        return _swapped(target, name)
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return ToolFailure(ToolCode.NOT_FOUND, f"{target.asked}: {name!r} is not a directory")
    if exc.errno == errno.EISDIR:
        return ToolFailure(ToolCode.NOT_A_FILE, f"{target.asked}: is a directory")
    return ToolFailure(ToolCode.TOOL_FAILED, f"{target.asked}: {exc.strerror or exc}")


def _swapped(target: Target, name: str) -> ToolFailure:
    return ToolFailure(
        ToolCode.OUTSIDE_WORKSPACE,
        f"{target.asked}: {name!r} became a symbolic link after the path was checked",
    )
