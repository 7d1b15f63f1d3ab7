"""The `*** Begin Patch` format OpenAI's models are trained to write (Codex's apply_patch).

    *** Begin Patch
    *** Update File: src/app.py        (optionally followed by *** Move to: new/path.py)
    @@ def handler(request):           (zero or more anchors: the lines the change sits in)
     context
    -removed
    +added
    *** End of File                    (optional: the chunk ends the file)
    *** Add File: notes.txt
    +every line of the new file
    *** Delete File: old.txt
    *** End Patch

Chunks carry no line numbers: they are located by their text, like any hunk. Text around
the patch (prose, Markdown fences, a heredoc) is skipped; a missing `*** End Patch` ends
the patch at the end of the text. An empty line inside a chunk is an empty context line.
"""

from __future__ import annotations

from ide_client.patch.model import ADDED, CONTEXT, FilePatch, Hunk, HunkLine, PatchError

BEGIN = "*** Begin Patch"
_END = "*** End Patch"
_ADD, _DELETE, _UPDATE = "*** Add File:", "*** Delete File:", "*** Update File:"
_MOVE, _END_OF_FILE = "*** Move to:", "*** End of File"


def is_v4a(diff: str) -> bool:
    """Whether the text holds a `*** Begin Patch` patch rather than a unified diff."""
    return any(line.strip() == BEGIN for line in diff.splitlines())


def parse_v4a(diff: str) -> list[FilePatch]:
    """Every file operation of the patch, in order; PatchError names the line that is wrong."""
    lines = diff.split("\n")
    start = next(index for index, line in enumerate(lines) if line.strip() == BEGIN)
    return _Parser(lines, start + 1).parse()


class _Parser:
    def __init__(self, lines: list[str], at: int) -> None:
        self.lines = lines
        self.at = at

    def parse(self) -> list[FilePatch]:
        patches: list[FilePatch] = []
        while self.at < len(self.lines):
            line = self.lines[self.at].strip()
            if line == _END:
                break
            self.at += 1
            if line.startswith(_ADD):
                patches.append(self._add(self._path(line, _ADD)))
            elif line.startswith(_DELETE):
                patches.append(FilePatch(self._path(line, _DELETE), None, (), blind_delete=True))
            elif line.startswith(_UPDATE):
                patches.append(self._update(self._path(line, _UPDATE)))
        return patches

    def _path(self, line: str, marker: str) -> str:
        path = line[len(marker) :].strip()
        if not path:
            raise PatchError(f"diff line {self.at}: {marker.strip('* ')} without a path")
        return path

    def _add(self, path: str) -> FilePatch:
        header_line = self.at
        body: list[HunkLine] = []
        while self.at < len(self.lines) and self.lines[self.at].startswith(ADDED):
            body.append(HunkLine(ADDED, self.lines[self.at][1:]))
            self.at += 1
        hunks = (Hunk(tuple(body), header_line),) if body else ()
        return FilePatch(None, path, hunks)

    def _update(self, path: str) -> FilePatch:
        new_path = path
        if self.at < len(self.lines) and self.lines[self.at].strip().startswith(_MOVE):
            new_path = self._path(self.lines[self.at].strip(), _MOVE)
            self.at += 1
        hunks: list[Hunk] = []
        anchors: list[str] = []
        body: list[HunkLine] = []
        header_line = self.at + 1
        while self.at < len(self.lines):
            line = self.lines[self.at]
            marker = line.strip()
            if marker == _END_OF_FILE:
                self.at += 1
                _close(hunks, body, anchors, header_line, at_end=True)
                body, anchors = [], []
                continue
            if marker.startswith("*** ") or not _is_chunk_line(line):
                break
            if line.startswith("@@"):
                if body:
                    _close(hunks, body, anchors, header_line, at_end=False)
                    body, anchors = [], []
                if not anchors:
                    header_line = self.at + 1
                anchor = line[2:].strip()
                if anchor:
                    anchors.append(anchor)
            else:
                body.append(HunkLine(line[0], line[1:]) if line else HunkLine(CONTEXT, ""))
            self.at += 1
        _close(hunks, body, anchors, header_line, at_end=False)
        if not hunks and new_path == path:
            raise PatchError(f"diff line {header_line}: *** Update File: {path} has no changes")
        return FilePatch(path, new_path, tuple(hunks))


def _is_chunk_line(line: str) -> bool:
    return not line or line[0] in " +-" or line.startswith("@@")


def _close(
    hunks: list[Hunk], body: list[HunkLine], anchors: list[str], header_line: int, *, at_end: bool
) -> None:
    """Finish one chunk (empty lines at its end may be separators) and add it to `hunks`."""
    tail = 0
    while tail < len(body) and body[-1 - tail] == HunkLine(CONTEXT, ""):
        tail += 1
    if len(body) > tail:
        hunks.append(Hunk(tuple(body), header_line, None, tuple(anchors), at_end, tail))
