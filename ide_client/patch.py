"""Unified diffs as `git diff` writes them: parsed into file patches, whose hunks apply to text.

Pure: no file system here (the `apply_patch` tool does the I/O, all or nothing). Understood:
`diff --git` sections with their extended headers (new/deleted file, mode changes, renames,
copies, C-quoted names), plain `---`/`+++` diffs, several files and hunks, and
`\\ No newline at end of file`. Binary patches are refused. A hunk must match the current text
exactly (context and removed lines); it may sit at another line than its header says (offset),
but never with fuzz.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ide_client.errors import ToolCode, ToolFailure

DEV_NULL = "/dev/null"
_HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_C_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


class PatchError(ToolFailure):
    """The diff cannot be read, or does not fit the files it names."""

    def __init__(self, message: str) -> None:
        super().__init__(ToolCode.PATCH_FAILED, message)


@dataclass(frozen=True)
class Hunk:
    """One `@@` block: the lines it expects (`old`) and the lines it leaves (`new`), with endings."""

    old_start: int
    old_count: int
    old: tuple[str, ...]
    new: tuple[str, ...]
    diff_line: int


@dataclass(frozen=True)
class FilePatch:
    """The change to one file: `old_path` None creates it, `new_path` None deletes it.

    `old_path != new_path` is a rename, or a copy when `copy` is set. `executable` is the new
    mode's execute bit when the diff names a mode, else None (keep).
    """

    old_path: str | None
    new_path: str | None
    hunks: tuple[Hunk, ...]
    executable: bool | None = None
    copy: bool = False


def parse_patch(diff: str) -> list[FilePatch]:
    """Every file patch in `diff`, in order; PatchError names the line that is wrong."""
    lines = diff.split("\n")
    if lines[-1] == "":
        lines.pop()
    patches = _Parser(lines).parse()
    if not patches:
        raise PatchError("no file changes found: expected a unified diff as `git diff` writes it")
    return patches


def apply_hunks(text: str, hunks: Sequence[Hunk], path: str) -> str:
    """`text` with every hunk applied in order; PatchError if one does not match."""
    lines = split_lines(text)
    result: list[str] = []
    cursor = 0
    for number, hunk in enumerate(hunks, 1):
        at = _find(lines, hunk, cursor)
        if at is None:
            raise PatchError(_mismatch(path, number, hunk, lines, cursor))
        result.extend(lines[cursor:at])
        result.extend(hunk.new)
        cursor = at + len(hunk.old)
    result.extend(lines[cursor:])
    return "".join(result)


def split_lines(text: str) -> list[str]:
    """Lines of `text` with their '\\n' kept; only '\\n' ends a line, so '\\r' stays in the text."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _find(lines: list[str], hunk: Hunk, cursor: int) -> int | None:
    """Where the hunk's old lines sit at or after `cursor`, nearest to where its header says."""
    size = len(hunk.old)
    wanted = hunk.old_start - 1 if hunk.old_count else hunk.old_start
    last = len(lines) - size
    if last < cursor:
        return None
    wanted = min(max(wanted, cursor), last)
    expected = list(hunk.old)
    for distance in range(max(wanted - cursor, last - wanted) + 1):
        for at in (wanted - distance, wanted + distance):
            if cursor <= at <= last and lines[at : at + size] == expected:
                return at
    return None


def _mismatch(path: str, number: int, hunk: Hunk, lines: list[str], cursor: int) -> str:
    """Say where the hunk comes closest to matching and which line differs there."""
    wanted = hunk.old_start - 1

    def closeness(at: int) -> tuple[int, int]:
        matching = 0
        for expected, actual in zip(hunk.old, lines[at:], strict=False):
            if expected != actual:
                break
            matching += 1
        return matching, -abs(at - wanted)

    at = max(range(cursor, len(lines) + 1), key=closeness)
    matching = closeness(at)[0]
    line = at + matching
    actual = lines[line].removesuffix("\n") if line < len(lines) else "<end of file>"
    expected = hunk.old[matching].removesuffix("\n")
    return (
        f"{path}: hunk #{number} (diff line {hunk.diff_line}) does not match the file: "
        f"line {line + 1} is {actual!r} where the hunk expects {expected!r}"
    )


class _Parser:
    """Reads the diff line by line; `self.at` is the index of the next line to read."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.at = 0

    def parse(self) -> list[FilePatch]:
        patches: list[FilePatch] = []
        while self.at < len(self.lines):
            line = self.lines[self.at]
            if line.startswith("diff --git "):
                patches.append(self._git_section())
            elif line.startswith("--- ") and self._peek(1).startswith("+++ "):
                old, new = self._file_names()
                patches.append(self._finish(old, new, None, copy=False))
            elif line.startswith("@@ "):
                raise self._error("hunk without a file header (---/+++) before it")
            else:
                self.at += 1
        return patches

    def _git_section(self) -> FilePatch:
        header = self.lines[self.at][len("diff --git ") :]
        self.at += 1
        old: str | None
        new: str | None
        old, new = _split_git_header(header)
        executable: bool | None = None
        copy = False
        created = deleted = False
        while self.at < len(self.lines):
            line = self.lines[self.at]
            key, _, value = line.partition(" ")
            if line.startswith(("new file mode ", "deleted file mode ", "new mode ")):
                executable = value.rsplit(" ", 1)[-1] == "100755"
                created |= line.startswith("new file")
                deleted |= line.startswith("deleted file")
            elif line.startswith(("rename from ", "copy from ")):
                old = _unquote(line.split(" ", 2)[2])
                copy = key == "copy"
            elif line.startswith(("rename to ", "copy to ")):
                new = _unquote(line.split(" ", 2)[2])
            elif line.startswith(("Binary files ", "GIT binary patch")):
                raise self._error("binary patches are not supported")
            elif not line.startswith(
                ("old mode ", "index ", "similarity index ", "dissimilarity index ")
            ):
                break
            self.at += 1
        if self.at < len(self.lines) and self.lines[self.at].startswith("--- "):
            old, new = self._file_names()
        if created:
            old = None
        if deleted:
            new = None
        return self._finish(old, new, executable, copy=copy)

    def _file_names(self) -> tuple[str | None, str | None]:
        """The `---` and `+++` lines: the old and new path, None for /dev/null."""
        if not self._peek(1).startswith("+++ "):
            raise self._error("'---' line without a '+++' line after it")
        old = _path_from_marker(self.lines[self.at][4:], "a/")
        new = _path_from_marker(self.lines[self.at + 1][4:], "b/")
        self.at += 2
        return old, new

    def _finish(
        self, old: str | None, new: str | None, executable: bool | None, *, copy: bool
    ) -> FilePatch:
        if old is None and new is None:
            raise self._error("a file patch from /dev/null to /dev/null")
        hunks: list[Hunk] = []
        while self.at < len(self.lines) and self.lines[self.at].startswith("@@ "):
            hunks.append(self._hunk())
        return FilePatch(old, new, tuple(hunks), executable, copy)

    def _hunk(self) -> Hunk:
        header_line = self.at + 1
        match = _HUNK_HEADER.match(self.lines[self.at])
        if match is None:
            raise self._error(f"malformed hunk header {self.lines[self.at]!r}")
        old_start = int(match[1])
        old_left = int(match[2]) if match[2] is not None else 1
        new_left = int(match[4]) if match[4] is not None else 1
        old_count = old_left
        old: list[str] = []
        new: list[str] = []
        last_tag = ""
        self.at += 1
        while old_left or new_left or self._peek(0).startswith("\\"):
            if self.at >= len(self.lines):
                raise self._error("the diff ends inside a hunk")
            line = self.lines[self.at]
            tag, text = (line[0], line[1:] + "\n") if line else (" ", "\n")
            if tag == "\\":
                _drop_newline(last_tag, old, new)
                if not (old_left or new_left):
                    self.at += 1
                    break
            elif tag == " " and old_left and new_left:
                old.append(text)
                new.append(text)
                old_left, new_left = old_left - 1, new_left - 1
            elif tag == "-" and old_left:
                old.append(text)
                old_left -= 1
            elif tag == "+" and new_left:
                new.append(text)
                new_left -= 1
            else:
                raise self._error(
                    f"line {line!r} does not fit the hunk header (counts or line prefix wrong)"
                )
            last_tag = tag
            self.at += 1
        return Hunk(old_start, old_count, tuple(old), tuple(new), header_line)

    def _peek(self, ahead: int) -> str:
        index = self.at + ahead
        return self.lines[index] if index < len(self.lines) else ""

    def _error(self, what: str) -> PatchError:
        return PatchError(f"diff line {self.at + 1}: {what}")


def _drop_newline(last_tag: str, old: list[str], new: list[str]) -> None:
    """Apply `\\ No newline at end of file` to the line before it."""
    if last_tag in (" ", "-") and old:
        old[-1] = old[-1].removesuffix("\n")
    if last_tag in (" ", "+") and new:
        new[-1] = new[-1].removesuffix("\n")


def _path_from_marker(value: str, prefix: str) -> str | None:
    """The path of a `---`/`+++` line: quoted or cut at a tab, with git's a/ or b/ prefix removed."""
    name = _unquote(value) if value.startswith('"') else value.split("\t", 1)[0].rstrip()
    if name == DEV_NULL:
        return None
    return name.removeprefix(prefix)


def _split_git_header(header: str) -> tuple[str, str]:
    """The two paths of `diff --git a/X b/Y` (renames get theirs from `rename` lines instead)."""
    if header.startswith('"'):
        first, rest = _take_quoted(header)
        second = rest.strip()
    elif ' "' in header:
        first, _, second = header.partition(' "')
        second = '"' + second
    else:
        half = (len(header) - 1) // 2
        if header[half : half + 1] == " " and header[:half][2:] == header[half + 1 :][2:]:
            first, second = header[:half], header[half + 1 :]
        else:
            first, _, second = header.partition(" b/")
            second = "b/" + second
    old = _unquote(first) if first.startswith('"') else first
    new = _unquote(second) if second.startswith('"') else second
    return old.removeprefix("a/"), new.removeprefix("b/")


def _unquote(value: str) -> str:
    """A path as git writes it: plain, or C-quoted with octal escapes for non-ASCII bytes."""
    if not value.startswith('"'):
        return value
    return _take_quoted(value)[0]


def _take_quoted(value: str) -> tuple[str, str]:
    """Decode the C-quoted string at the start of `value`; return it and the rest of `value`."""
    out = bytearray()
    index = 1
    while index < len(value):
        char = value[index]
        if char == '"':
            return out.decode("utf-8", errors="surrogateescape"), value[index + 1 :]
        if char != "\\":
            out += char.encode("utf-8")
            index += 1
            continue
        escape = value[index + 1 : index + 2]
        if escape in _C_ESCAPES:
            out.append(_C_ESCAPES[escape])
            index += 2
        elif re.fullmatch(r"[0-7]{3}", value[index + 1 : index + 4]):
            out.append(int(value[index + 1 : index + 4], 8) & 0xFF)
            index += 4
        else:
            raise PatchError(f"bad escape in quoted path {value!r}")
    raise PatchError(f"unterminated quoted path {value!r}")
