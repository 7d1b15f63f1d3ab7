"""Unified diffs, as `git diff` writes them and as models write them: read into file patches.

Understood: `diff --git` sections with their extended headers (new/deleted file, mode
changes, renames, copies, C-quoted names), plain `---`/`+++` diffs with or without the
`a/` `b/` prefixes, several files and hunks, `\\ No newline at end of file`, and anything
around them (Markdown fences, prose), which is skipped. Binary patches are refused.

Tolerated, because models write them: hunk headers with wrong numbers or counts, or none
(`@@`, `@@ ... @@`); when the counts do not fit the body, the body is read by its line
prefixes up to the first line that cannot belong to it. An empty line in a hunk is an empty
context line. Line numbers are kept only as a hint: hunks are located by their text.
"""

from __future__ import annotations

import dataclasses
import re

from ide_client.patch.model import ADDED, CONTEXT, REMOVED, FilePatch, Hunk, HunkLine, PatchError

DEV_NULL = "/dev/null"
_NUMBERED_HEADER = re.compile(r"^@@+ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@+ ?(.*)$")
_BARE_HEADER = re.compile(r"^@@+(.*?)(?:@@+(.*))?$")
_C_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}
_GIT_EXTENDED = ("old mode ", "index ", "similarity index ", "dissimilarity index ")


def parse_unified(diff: str) -> list[FilePatch]:
    """Every file patch of a unified diff, in order; PatchError names the line that is wrong."""
    lines = diff.split("\n")
    if lines[-1] == "":
        lines.pop()
    return _Parser(lines).parse()


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
            elif self._at_file_header():
                old, new = self._file_names()
                patches.append(self._finish(old, new, None, copy=False))
            elif line.startswith("@@"):
                if not patches:
                    raise self._error("hunk without a file header (---/+++) before it")
                last = patches[-1]
                patches[-1] = dataclasses.replace(last, hunks=last.hunks + self._hunks())
            else:
                self.at += 1
        return patches

    def _at_file_header(self) -> bool:
        return self._peek(0).startswith("--- ") and self._peek(1).startswith("+++ ")

    def _git_section(self) -> FilePatch:
        header = self.lines[self.at][len("diff --git ") :]
        self.at += 1
        old: str | None
        new: str | None
        old, new = _split_git_header(header)
        executable: bool | None = None
        copy = created = deleted = False
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
            elif not line.startswith(_GIT_EXTENDED):
                break
            self.at += 1
        if self._at_file_header():
            old, new = self._file_names()
        if created:
            old = None
        if deleted:
            new = None
        return self._finish(old, new, executable, copy=copy)

    def _file_names(self) -> tuple[str | None, str | None]:
        """The `---` and `+++` lines: the old and new path, None for /dev/null."""
        old = _path_from_marker(self.lines[self.at][4:], "a/")
        new = _path_from_marker(self.lines[self.at + 1][4:], "b/")
        self.at += 2
        return old, new

    def _finish(
        self, old: str | None, new: str | None, executable: bool | None, *, copy: bool
    ) -> FilePatch:
        if old is None and new is None:
            raise self._error("a file patch from /dev/null to /dev/null")
        return FilePatch(old, new, self._hunks(), executable, copy)

    def _hunks(self) -> tuple[Hunk, ...]:
        hunks: list[Hunk] = []
        while self._peek(0).startswith("@@"):
            hunks.append(self._hunk())
            while self._peek(0) == "" and self._peek(1).startswith("@@"):
                self.at += 1
        return tuple(hunks)

    def _hunk(self) -> Hunk:
        header_line = self.at + 1
        old_start, counts, heading = _read_header(self.lines[self.at])
        self.at += 1
        body = self._counted_body(*counts) if counts else None
        blank_tail = 0
        if body is None:
            body, blank_tail = self._prefixed_body()
        if not any(line.tag != CONTEXT or line.text for line in body):
            raise PatchError(f"diff line {header_line}: the hunk has no lines")
        anchors = (heading,) if heading else ()
        return Hunk(tuple(body), header_line, old_start, anchors, blank_tail=blank_tail)

    def _counted_body(self, old_left: int, new_left: int) -> list[HunkLine] | None:
        """The body as the header's counts say, or None when the counts do not fit it."""
        start = self.at
        body: list[HunkLine] = []
        while old_left or new_left or self._peek(0).startswith("\\"):
            if self.at >= len(self.lines):
                break
            line = self.lines[self.at]
            tag, text = (line[0], line[1:]) if line else (CONTEXT, "")
            if tag == "\\":
                _drop_newline(body)
                self.at += 1
                if not (old_left or new_left):
                    break
                continue
            if tag == CONTEXT and old_left and new_left:
                old_left, new_left = old_left - 1, new_left - 1
            elif tag == REMOVED and old_left:
                old_left -= 1
            elif tag == ADDED and new_left:
                new_left -= 1
            else:
                break
            body.append(HunkLine(tag, text))
            self.at += 1
        if old_left or new_left or self._continues_body():
            self.at = start
            return None
        return body

    def _prefixed_body(self) -> tuple[list[HunkLine], int]:
        """The body read by line prefixes, up to a line that cannot be part of a hunk, and how
        many empty lines end it."""
        body: list[HunkLine] = []
        blank_tail = 0
        while self._continues_body() or (self._peek(0) == "" and self.at < len(self.lines)):
            line = self.lines[self.at]
            if line.startswith("\\"):
                _drop_newline(body)
            else:
                body.append(HunkLine(line[0], line[1:]) if line else HunkLine(CONTEXT, ""))
                blank_tail = blank_tail + 1 if not line else 0
            self.at += 1
        return body, blank_tail

    def _continues_body(self) -> bool:
        """Whether the next line reads as a hunk line rather than the start of something else."""
        line = self._peek(0)
        if not line or line[0] not in " +-\\":
            return False
        return not (self._at_file_header() or line.startswith("diff --git "))

    def _peek(self, ahead: int) -> str:
        index = self.at + ahead
        return self.lines[index] if index < len(self.lines) else ""

    def _error(self, what: str) -> PatchError:
        return PatchError(f"diff line {self.at + 1}: {what}")


def _read_header(header: str) -> tuple[int | None, tuple[int, int] | None, str]:
    """(old start, (old count, new count), section heading) of an `@@` line, as far as it says."""
    numbered = _NUMBERED_HEADER.match(header)
    if numbered is not None:
        old_count = int(numbered[2]) if numbered[2] is not None else 1
        new_count = int(numbered[4]) if numbered[4] is not None else 1
        return int(numbered[1]), (old_count, new_count), numbered[5].strip()
    bare = _BARE_HEADER.match(header)
    middle, heading = (bare[1], bare[2]) if bare else ("", None)
    start = re.search(r"-(\d+)", middle)
    if heading is None:
        heading = "" if start or not middle.strip(" .") else middle
    return (int(start[1]) if start else None), None, heading.strip()


def _drop_newline(body: list[HunkLine]) -> None:
    """Apply `\\ No newline at end of file` to the line before it."""
    if body:
        last = body[-1]
        body[-1] = HunkLine(last.tag, last.text, newline=False)


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
