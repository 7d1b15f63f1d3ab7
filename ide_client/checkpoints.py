"""Checkpoints of the files the agent changes, per session and turn, so a turn can be undone.

Rules this module lives by:
- Before a write tool replaces or deletes a file, the file's prior state (its bytes and mode,
  or "did not exist") is saved; after the write, the state the agent left (a hash) is noted.
  A file touched twice in a turn keeps its state from before the turn's first touch.
- Checkpoints live in the workspace's own `.agent-service/checkpoints/` (which no tool may
  write, see workspace.py), ignored by git through a `.gitignore` of their own: the user's
  index, history and ignore files are never touched.
- Reverting a turn puts back every file that turn and every later one changed, as it was
  before that turn, all or nothing (`Workspace.commit`). A file that is no longer as the
  agent left it (the user edited it since) is a conflict: the revert is refused, naming the
  files, unless forced.
- The store's own directories are walked with O_NOFOLLOW, so a symlink planted at
  `.agent-service` never sends a checkpoint outside the workspace.

All I/O is blocking: call it off the event loop.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

from ide_client.errors import IdeClientError, ToolCode, ToolFailure
from ide_client.workspace import (
    AGENT_CONFIG_DIR,
    FileChange,
    FileRead,
    FileStamp,
    Target,
    Workspace,
)

CHECKPOINTS_DIR = "checkpoints"
FORMAT_VERSION = 1
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
# A file over the workspace's size limit cannot be what the agent left: it never matches.
_UNREADABLE = "unreadable"


class CheckpointCode(StrEnum):
    """Why a revert did not happen."""

    NOTHING_TO_UNDO = "nothing_to_undo"
    UNKNOWN_TURN = "unknown_turn"
    CHANGED_SINCE = "changed_since"
    CHECKPOINT_DAMAGED = "checkpoint_damaged"
    RESTORE_FAILED = "restore_failed"
    TURN_RUNNING = "turn_running"
    NO_CHECKPOINTS = "no_checkpoints"


class CheckpointError(IdeClientError):
    """A revert was refused or failed; nothing was changed. `paths` names the files at issue."""

    code: CheckpointCode

    def __init__(self, code: CheckpointCode, message: str, paths: Sequence[str] = ()) -> None:
        super().__init__(code, message)
        self.paths = tuple(paths)


@dataclass(frozen=True)
class TurnKey:
    """Which turn of which session the next changes belong to."""

    session_id: str
    turn_id: str


@dataclass(frozen=True)
class FileState:
    """A file's state: `digest` of its bytes (None: it did not exist) and its permission bits."""

    digest: str | None
    mode: int | None = None

    @classmethod
    def of(cls, read: FileRead | None) -> FileState:
        if read is None:
            return cls(None)
        return cls(_digest(read.data), read.mode)


@dataclass(frozen=True)
class FileCheckpoint:
    """One file a turn changed: how it was before the turn, and how the agent left it."""

    path: str
    before: FileState
    after: FileState


@dataclass
class TurnCheckpoint:
    """Every file one turn changed, in the order they were first touched."""

    turn_id: str
    files: dict[str, FileCheckpoint] = field(default_factory=dict)
    reverted: bool = False


@dataclass(frozen=True)
class Reverted:
    """What a revert did: `turn_id` is the earliest turn undone, `turns` all of them."""

    turn_id: str
    turns: tuple[str, ...]
    paths: tuple[str, ...]


class CheckpointStore:
    """The checkpoints of one workspace, for every session the IDE ran in it.

    `current` is the turn the next write belongs to: the client sets it before it runs a call
    (calls run one at a time). With no current turn, `commit` writes without a checkpoint.
    """

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.current: TurnKey | None = None

    # ---- recording -----------------------------------------------------------------------

    def commit(self, changes: Sequence[FileChange]) -> None:
        """`Workspace.commit(changes)`, each file's prior state saved first.

        A change that did not say what it expects on disk is guarded by the state just saved,
        so the checkpoint is exactly what the write replaced.
        """
        key = self.current
        if key is None:
            self.workspace.commit(changes)
            return
        guarded = []
        reads: dict[str, FileRead | None] = {}
        for change in changes:
            read = self._read(change.target)
            reads[change.target.relative] = read
            if change.expect == "any":
                change = replace(change, expect=read.stamp if read is not None else "absent")
            guarded.append(change)
        try:
            self._commit_kept(key, guarded, reads)
        except CheckpointError as exc:
            raise ToolFailure(
                ToolCode.TOOL_FAILED, f"{exc.message}; the change was not made"
            ) from None

    def _commit_kept(
        self, key: TurnKey, guarded: list[FileChange], reads: dict[str, FileRead | None]
    ) -> None:
        with self._store() as store:
            session = store.load(key.session_id)
            turn = session.turn(key.turn_id)
            for path, read in reads.items():
                if path not in turn.files:
                    before = FileState.of(read)
                    if read is not None:
                        store.save_blob(before.digest, read.data)
                    turn.files[path] = FileCheckpoint(path, before, before)
            store.save(session)
            self.workspace.commit(guarded)
            for change in guarded:
                path = change.target.relative
                after = FileState(None if change.data is None else _digest(change.data))
                turn.files[path] = replace(turn.files[path], after=after)
            store.save(session)

    def relabel(self, session_id: str, label: str, turn_id: str) -> None:
        """Name the checkpoints kept under `label` after the turn they belong to."""
        with self._store() as store:
            session = store.load(session_id)
            for turn in session.turns:
                if turn.turn_id == label:
                    turn.turn_id = turn_id
                    store.save(session)
                    return

    # ---- reading and reverting -----------------------------------------------------------

    def turns(self, session_id: str) -> list[TurnCheckpoint]:
        """The session's turns that changed files and are not reverted, oldest first."""
        with self._store() as store:
            return store.load(session_id).active()

    def revert(
        self, session_id: str, turn_id: str | None = None, *, force: bool = False
    ) -> Reverted:
        """Put back the files of `turn_id` (default: the last turn that changed any) and of
        every later turn, as they were before it; CheckpointError when refused."""
        with self._store() as store:
            session = store.load(session_id)
            active = session.active()
            if not active:
                raise CheckpointError(
                    CheckpointCode.NOTHING_TO_UNDO,
                    "nothing to undo: no turn of this session changed a file "
                    "(or every change is already undone)",
                )
            chosen = active[-1] if turn_id is None else _find(active, turn_id)
            undone = active[active.index(chosen) :]
            plan = _restore_plan(undone)
            try:
                changes, conflicts = self._changes(store, plan, force=force)
            except ToolFailure as failure:
                raise CheckpointError(
                    CheckpointCode.RESTORE_FAILED,
                    f"not undone: {failure.message}; nothing was changed",
                ) from None
            if conflicts:
                raise CheckpointError(
                    CheckpointCode.CHANGED_SINCE,
                    f"not undone: {', '.join(conflicts)} changed since turn {chosen.turn_id} "
                    "left them (edited by you, or by another program); nothing was changed. "
                    "Force the undo to overwrite them.",
                    conflicts,
                )
            try:
                self.workspace.commit(changes)
            except ToolFailure as failure:
                raise CheckpointError(
                    CheckpointCode.RESTORE_FAILED,
                    f"not undone: {failure.message}; nothing was changed",
                    [change.target.relative for change in changes],
                ) from None
            for turn in undone:
                turn.reverted = True
            store.save(session)
        return Reverted(chosen.turn_id, tuple(t.turn_id for t in undone), tuple(sorted(plan)))

    def _changes(
        self, store: _Store, plan: dict[str, tuple[FileState, FileState]], *, force: bool
    ) -> tuple[list[FileChange], list[str]]:
        """The workspace changes that restore `plan`, and the files no longer as left."""
        changes: list[FileChange] = []
        conflicts: list[str] = []
        for path, (before, left) in plan.items():
            target = self.workspace.resolve(path, write=True)
            try:
                read = self._read(target)
                now = FileState.of(read)
            except ToolFailure:
                read, now = None, FileState(_UNREADABLE)
            if now.digest != left.digest and not force:
                conflicts.append(path)
                continue
            if now.digest == before.digest and (before.digest is None or now.mode == before.mode):
                continue
            expect: FileStamp | Literal["absent", "any"] = "any"
            if not force:
                expect = read.stamp if read is not None else "absent"
            if before.digest is None:
                changes.append(FileChange(target, None, expect=expect))
                continue
            data = store.load_blob(before.digest, path)
            mode = before.mode
            executable = None if mode is None else bool(mode & 0o111)
            changes.append(
                FileChange(target, data, expect=expect, mode_from=mode, executable=executable)
            )
        return changes, conflicts

    def _read(self, target: Target) -> FileRead | None:
        """The file as it is now, None when it does not exist."""
        try:
            return self.workspace.read(target)
        except ToolFailure as failure:
            if failure.code is ToolCode.NOT_FOUND:
                return None
            if failure.code is ToolCode.TOO_LARGE:
                raise ToolFailure(
                    ToolCode.TOO_LARGE,
                    f"{failure.message}; the IDE keeps a checkpoint of every file before it "
                    "changes it, so it cannot change this one",
                ) from None
            raise

    @contextlib.contextmanager
    def _store(self) -> Iterator[_Store]:
        try:
            store = _Store.open(self.workspace)
        except OSError as exc:
            raise CheckpointError(
                CheckpointCode.NO_CHECKPOINTS,
                f"cannot keep checkpoints in {AGENT_CONFIG_DIR}/{CHECKPOINTS_DIR}: "
                f"{exc.strerror or exc}",
            ) from None
        try:
            yield store
        finally:
            store.close()


def _find(active: list[TurnCheckpoint], turn_id: str) -> TurnCheckpoint:
    for turn in active:
        if turn.turn_id == turn_id:
            return turn
    known = ", ".join(turn.turn_id for turn in active)
    raise CheckpointError(
        CheckpointCode.UNKNOWN_TURN,
        f"turn {turn_id} has no changes to undo (turns with changes: {known})",
    )


def _restore_plan(undone: list[TurnCheckpoint]) -> dict[str, tuple[FileState, FileState]]:
    """Per file: its state before the first undone turn that touched it, and as last left."""
    plan: dict[str, tuple[FileState, FileState]] = {}
    for turn in undone:
        for path, file in turn.files.items():
            before = plan[path][0] if path in plan else file.before
            plan[path] = (before, file.after)
    return plan


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class _Session:
    """One session's checkpoints as kept on disk (one JSON document)."""

    session_id: str
    turns: list[TurnCheckpoint] = field(default_factory=list)

    def turn(self, turn_id: str) -> TurnCheckpoint:
        for turn in self.turns:
            if turn.turn_id == turn_id and not turn.reverted:
                return turn
        turn = TurnCheckpoint(turn_id)
        self.turns.append(turn)
        return turn

    def active(self) -> list[TurnCheckpoint]:
        return [turn for turn in self.turns if turn.files and not turn.reverted]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "session_id": self.session_id,
            "turns": [
                {
                    "turn_id": turn.turn_id,
                    "reverted": turn.reverted,
                    "files": [
                        {"path": f.path, "before": _state_json(f.before), "after": f.after.digest}
                        for f in turn.files.values()
                    ],
                }
                for turn in self.turns
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _Session:
        turns = []
        for turn in data["turns"]:
            files = {
                f["path"]: FileCheckpoint(
                    f["path"],
                    FileState(f["before"]["digest"], f["before"]["mode"]),
                    FileState(f["after"]),
                )
                for f in turn["files"]
            }
            turns.append(TurnCheckpoint(turn["turn_id"], files, bool(turn["reverted"])))
        return cls(str(data["session_id"]), turns)


def _state_json(state: FileState) -> dict[str, Any]:
    return {"digest": state.digest, "mode": state.mode}


class _Store:
    """`.agent-service/checkpoints/` opened by descriptor: `sessions/` and `blobs/` in it."""

    def __init__(self, sessions_fd: int, blobs_fd: int) -> None:
        self._sessions = sessions_fd
        self._blobs = blobs_fd

    @classmethod
    def open(cls, workspace: Workspace) -> _Store:
        opened = [os.open(workspace.root, _DIR_FLAGS)]
        try:
            for name in (AGENT_CONFIG_DIR, CHECKPOINTS_DIR):
                opened.append(_subdirectory(opened[-1], name))
            home = opened[-1]
            _write_if_missing(home, ".gitignore", b"# agent-service checkpoints: never commit\n*\n")
            sessions = _subdirectory(home, "sessions")
            try:
                return cls(sessions, _subdirectory(home, "blobs"))
            except BaseException:
                os.close(sessions)
                raise
        finally:
            for fd in opened:
                os.close(fd)

    def close(self) -> None:
        os.close(self._sessions)
        os.close(self._blobs)

    def load(self, session_id: str) -> _Session:
        data = _read(self._sessions, _session_file(session_id))
        if data is None:
            return _Session(session_id)
        try:
            document = json.loads(data)
            if document.get("version") != FORMAT_VERSION:
                raise ValueError(f"format version {document.get('version')!r}")
            return _Session.from_json(document)
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(
                CheckpointCode.CHECKPOINT_DAMAGED,
                f"the checkpoints of session {session_id} cannot be read ({exc})",
            ) from None

    def save(self, session: _Session) -> None:
        data = json.dumps(session.to_json(), indent=1).encode("utf-8")
        _write_atomically(self._sessions, _session_file(session.session_id), data)

    def save_blob(self, digest: str | None, data: bytes) -> None:
        if digest is not None:
            _write_if_missing(self._blobs, digest, data)

    def load_blob(self, digest: str, path: str) -> bytes:
        data = _read(self._blobs, digest)
        if data is None or _digest(data) != digest:
            raise CheckpointError(
                CheckpointCode.CHECKPOINT_DAMAGED,
                f"the checkpoint of {path} is missing or damaged; nothing was changed",
                [path],
            )
        return data


def _session_file(session_id: str) -> str:
    """A file name for the session: its id when that is a plain name, else its hash."""
    name = session_id if _SAFE_NAME.match(session_id) else _digest(session_id.encode())
    return f"{name}.json"


def _subdirectory(parent: int, name: str) -> int:
    """Open (making it if needed) directory `name` under `parent`, never through a symlink."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o700, dir_fd=parent)
    return os.open(name, _DIR_FLAGS, dir_fd=parent)


def _read(dir_fd: int, name: str) -> bytes | None:
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            return None
        return file.read()


def _write_if_missing(dir_fd: int, name: str, data: bytes) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return
    _write_atomically(dir_fd, name, data)


def _write_atomically(dir_fd: int, name: str, data: bytes) -> None:
    """Write to a temp file, flush it to disk, rename it over `name`."""
    temp = f".{name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(temp, _TEMP_FLAGS, 0o600, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=dir_fd)
        raise
