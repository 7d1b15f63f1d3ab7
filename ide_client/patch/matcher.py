"""Where each hunk goes in a file's text, found by its lines in steps of decreasing strictness.

Rules this module lives by:
- A hunk is located by its context and removed lines, never by line numbers alone. Every
  hunk is located in the original text on its own, so hunks may come in any order; located
  hunks must not overlap.
- Steps: exact (line endings aside, so a CRLF file takes an LF diff), then trailing
  whitespace ignored, then indentation ignored, then all whitespace runs and typographic
  punctuation ignored. The first step that finds the lines decides. Only the exact step may
  choose among several places, and only with a sign that names one of them: the line the
  header states (or that line moved as much as the file's previous hunk moved), the
  anchors (`@@ def f():`) the place must sit in, or `*** End of File`. Anything else that
  matches more than once is refused.
- What the hunk keeps comes from the file, not from the diff: context lines stay as the file
  has them; added lines take the file's line ending and, when the match ignored
  indentation, the file's indentation (a uniform shift, or tabs for spaces), read from the
  removed lines when there are any; lines only added keep the reading under which they sit
  plausibly among their neighbours. A hunk whose indentation cannot be mapped onto the
  file's, or can be read both ways, is refused.
- Pure: text in, text or `Conflict`s out.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ide_client.patch.model import (
    ADDED,
    CONTEXT,
    REMOVED,
    Conflict,
    Hunk,
    PatchConflict,
)
from wire import split_lines

_PUNCTUATION = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
        "\u00a0": " ",
        "\u2026": "...",
    }
)
_NEAREST_MARGIN = 2
_NEAREST_LINES = 12
_MAX_CANDIDATES = 10


def _loose(text: str) -> str:
    return " ".join(text.translate(_PUNCTUATION).split())


_STEPS: tuple[Callable[[str], str], ...] = (lambda text: text, str.rstrip, str.strip, _loose)
_INDENTATION_STEP = 2
_TAB_WIDTHS = (4, 8, 2)
_BLOCK_OPENERS = (":", "{", "(", "[")
# a comment ending in ":" ("# the values:") opens no block
_COMMENT_STARTS = ("#", "//", "/*", "*", "--")


def apply_hunks(text: str, hunks: Sequence[Hunk], path: str) -> str:
    """`text` with every hunk applied; PatchConflict says which hunks do not fit and why."""
    result, conflicts = patch_text(text, hunks, path)
    if conflicts:
        raise PatchConflict(tuple(conflicts))
    assert result is not None
    return result


def patch_text(text: str, hunks: Sequence[Hunk], path: str) -> tuple[str | None, list[Conflict]]:
    """`text` with every hunk applied and no conflict, or None and every hunk's conflict."""
    file = _FileText(text)
    placements: list[_Placement] = []
    conflicts: list[Conflict] = []
    offset = 0
    for number, hunk in enumerate(hunks, 1):
        found = file.locate(hunk, number, path, offset)
        if isinstance(found, Conflict):
            conflicts.append(found)
            continue
        placements.append(found)
        if hunk.old_start is not None:
            offset = found.start - _stated_index(hunk)
    conflicts += _overlaps(placements, path, file)
    if conflicts:
        return None, conflicts
    return file.assemble(placements), []


@dataclass(frozen=True)
class _Placement:
    """A located hunk: the file lines [start, end) it replaces and the lines it leaves there."""

    number: int
    start: int
    end: int
    lines: tuple[str, ...]


class _FileText:
    """One file's lines, their bodies (no line ending) and their forms at each step."""

    def __init__(self, text: str) -> None:
        self.lines = split_lines(text)
        self.bodies = [line.removesuffix("\n").removesuffix("\r") for line in self.lines]
        crlf = sum(line.endswith("\r\n") for line in self.lines)
        self.eol = "\r\n" if crlf and crlf * 2 >= len(self.lines) else "\n"
        self._keys: dict[int, list[str]] = {}

    def keys(self, step: int) -> list[str]:
        if step not in self._keys:
            self._keys[step] = [_STEPS[step](body) for body in self.bodies]
        return self._keys[step]

    def locate(self, hunk: Hunk, number: int, path: str, offset: int) -> _Placement | Conflict:
        """Where the hunk goes, or the conflict that says why it cannot go anywhere."""
        found = self._locate(hunk, number, path, offset)
        if isinstance(found, Conflict) and found.kind == "context_mismatch" and hunk.blank_tail:
            shorter = dataclasses.replace(hunk, lines=hunk.lines[: -hunk.blank_tail], blank_tail=0)
            retry = self._locate(shorter, number, path, offset)
            if not isinstance(retry, Conflict):
                return retry
        return found

    def _locate(self, hunk: Hunk, number: int, path: str, offset: int) -> _Placement | Conflict:
        old = [line.text.removesuffix("\r") for line in hunk.old]
        if not old:
            return self._place_insertion(hunk, number, path)
        for step, normalize in enumerate(_STEPS):
            wanted = [normalize(text) for text in old]
            found = _positions(self.keys(step), wanted)
            if len(found) > 1 and step == 0:
                found = self._tiebreak(found, hunk, len(old), offset)
            if len(found) == 1:
                return self._place(hunk, number, path, found[0], step)
            if found:
                return self._ambiguous(hunk, number, path, found)
        return self._mismatch(hunk, number, path, old, offset)

    def _place_insertion(self, hunk: Hunk, number: int, path: str) -> _Placement | Conflict:
        """A hunk with no old lines: only an empty file or an `*** End of File` says where."""
        if self.lines and not hunk.at_end:
            return Conflict(
                "no_context",
                path,
                "the hunk has no context or removed lines, so nothing says where it goes; "
                "add the lines around the change as context",
                number,
                hunk.diff_line,
            )
        at = len(self.lines)
        return _Placement(number, at, at, self._new_lines(hunk, at, lambda text: text))

    def _tiebreak(self, found: list[int], hunk: Hunk, size: int, offset: int) -> list[int]:
        """The one place a sign in the hunk names among several exact matches, else them all."""
        if hunk.old_start is not None:
            stated = _stated_index(hunk)
            named = [at for at in found if at in (stated, stated + offset)]
            if len(named) == 1:
                return named
        if hunk.anchors:
            inside = [
                at for at in found if all(self._within(anchor, at) for anchor in hunk.anchors)
            ]
            if len(inside) == 1:
                return inside
        if hunk.at_end:
            ending = [at for at in found if at + size == len(self.lines)]
            if len(ending) == 1:
                return ending
        return found

    def _within(self, anchor: str, at: int) -> bool:
        """Whether line `at` is in the block opened by the nearest line starting with `anchor`.

        The block runs to the first non-blank line indented no deeper than the anchor's line
        that does not start with a closing bracket.
        """
        wanted = anchor.strip()
        keys = self.keys(_INDENTATION_STEP)
        for index in range(min(at, len(keys) - 1), -1, -1):
            if keys[index].startswith(wanted):
                depth = len(_indentation(self.bodies[index]))
                inside = range(index + 1, min(at + 1, len(keys)))
                return not any(_closes(self.bodies[line], depth) for line in inside)
        return False

    def _place(
        self, hunk: Hunk, number: int, path: str, at: int, step: int
    ) -> _Placement | Conflict:
        reindent = self._reindenter(hunk, at) if step >= _INDENTATION_STEP else _unchanged
        if reindent is not None and reindent is not _unchanged and not hunk.removes():
            reindent = self._likelier(hunk, at, reindent)
        if reindent is None:
            end = at + len(hunk.old)
            return Conflict(
                "indentation",
                path,
                f"the hunk matches lines {at + 1}-{end} only when indentation is ignored, and "
                "its indentation cannot be mapped onto the file's; rewrite it with the file's "
                "exact indentation",
                number,
                hunk.diff_line,
                nearest=self._region(at, end),
            )
        return _Placement(number, at, at + len(hunk.old), self._new_lines(hunk, at, reindent))

    def _new_lines(self, hunk: Hunk, at: int, reindent: Callable[[str], str]) -> tuple[str, ...]:
        """The lines the hunk leaves at `at`: context as the file has it, added lines adapted."""
        eol = self.eol
        if not self.lines and hunk.lines and all(line.text.endswith("\r") for line in hunk.new):
            eol = "\r\n"
        out: list[str] = []
        index = at
        for line in hunk.lines:
            if line.tag == CONTEXT:
                out.append(self.lines[index])
                index += 1
            elif line.tag == REMOVED:
                index += 1
            else:
                ending = eol if line.newline else ""
                out.append(reindent(line.text.removesuffix("\r")) + ending)
        return tuple(out)

    def _reindenter(self, hunk: Hunk, at: int) -> Callable[[str], str] | None:
        """How to turn the hunk's indentation into the file's, judged on the matched lines.

        Removed lines are the model's own frame for the lines that replace them, so they
        decide when there are any; else the context lines do.
        """
        matched = list(zip(range(at, at + len(hunk.old)), hunk.old, strict=True))
        judged = [pair for pair in matched if pair[1].tag == REMOVED] or matched
        pairs = {
            (_indentation(line.text), _indentation(self.bodies[index]))
            for index, line in judged
            if line.text.strip()
        }
        if all(ours == theirs for ours, theirs in pairs):
            return _unchanged
        return _tab_conversion(pairs) or _uniform_shift(pairs)

    def _likelier(
        self, hunk: Hunk, at: int, reindent: Callable[[str], str]
    ) -> Callable[[str], str] | None:
        """For lines only added, whether they were written in the hunk's indentation or the
        file's: the one under which every added line sits plausibly among its neighbours
        (level with the block's body after a line opening a block, else level with the line
        before or after)."""
        mapped = self._fits(hunk, at, reindent)
        literal = self._fits(hunk, at, _unchanged)
        if self._new_lines(hunk, at, reindent) == self._new_lines(hunk, at, _unchanged):
            return _unchanged
        if mapped != literal:
            return reindent if mapped else _unchanged
        return None

    def _fits(self, hunk: Hunk, at: int, reindent: Callable[[str], str]) -> bool:
        lines = self._new_lines(hunk, at, reindent)
        added = [line.tag == ADDED for line in hunk.lines if line.tag != REMOVED]
        before = [body for body in self.bodies[:at] if body.strip()][-1:]
        after = [body for body in self.bodies[at + len(hunk.old) :] if body.strip()][:1]
        texts = before + [line.rstrip("\r\n") for line in lines] + after
        flags = [False] * len(before) + added + [False] * len(after)
        solid = [index for index, text in enumerate(texts) if text.strip()]
        for position, index in enumerate(solid):
            if not flags[index]:
                continue
            previous = texts[solid[position - 1]] if position else None
            following = texts[solid[position + 1]] if position + 1 < len(solid) else None
            if not _sits_well(texts[index], previous, following):
                return False
        return True

    def _ambiguous(self, hunk: Hunk, number: int, path: str, found: list[int]) -> Conflict:
        shown = tuple(at + 1 for at in found[:_MAX_CANDIDATES])
        return Conflict(
            "ambiguous",
            path,
            f"the hunk's lines match {len(found)} places of the file and nothing in the hunk "
            "tells them apart; add context lines that make it unique",
            number,
            hunk.diff_line,
            candidates=shown,
        )

    def _mismatch(
        self, hunk: Hunk, number: int, path: str, old: list[str], offset: int
    ) -> Conflict:
        """The conflict for a hunk that matches nowhere: its nearest region, the first difference."""
        keys = self.keys(len(_STEPS) - 1)
        wanted = [_loose(text) for text in old]
        stated = _stated_index(hunk) + offset if hunk.old_start is not None else 0
        last = max(len(keys) - len(wanted), 0)

        def closeness(at: int) -> tuple[int, int]:
            same = sum(a == b for a, b in zip(keys[at : at + len(wanted)], wanted, strict=False))
            return same, -abs(at - stated)

        at = max(range(last + 1), key=closeness)
        differs = next(
            (
                index
                for index, text in enumerate(wanted)
                if at + index >= len(keys) or keys[at + index] != text
            ),
            0,
        )
        line = at + differs
        actual = self.bodies[line] if line < len(self.bodies) else "<end of file>"
        summary = "the hunk does not match the file (a context or removed line differs)"
        if closeness(at)[0] == 0:
            summary = "none of the hunk's context or removed lines is in the file"
        return Conflict(
            "context_mismatch",
            path,
            summary,
            number,
            hunk.diff_line,
            line=line + 1,
            expected=hunk.old[differs].text.removesuffix("\r"),
            actual=actual,
            nearest=self._region(at, at + len(wanted), focus=line),
        )

    def _region(
        self, start: int, end: int, focus: int | None = None
    ) -> tuple[tuple[int, str], ...]:
        """Lines [start, end) with a margin, at most `_NEAREST_LINES` of them around `focus`."""
        first = max(start - _NEAREST_MARGIN, 0)
        if focus is not None and focus - first > _NEAREST_LINES // 2:
            first = focus - _NEAREST_LINES // 2
        last = min(end + _NEAREST_MARGIN, len(self.bodies), first + _NEAREST_LINES)
        return tuple((index + 1, self.bodies[index]) for index in range(first, last))

    def assemble(self, placements: list[_Placement]) -> str:
        """The file with every placement applied; a line left without ending gets one when
        another line follows it."""
        out: list[str] = []
        cursor = 0
        for placement in sorted(placements, key=lambda p: (p.start, p.number)):
            out += self.lines[cursor : placement.start]
            out += placement.lines
            cursor = placement.end
        out += self.lines[cursor:]
        for index in range(len(out) - 1):
            if not out[index].endswith("\n"):
                out[index] += self.eol
        return "".join(out)


def _overlaps(placements: list[_Placement], path: str, file: _FileText) -> list[Conflict]:
    conflicts: list[Conflict] = []
    ordered = sorted(placements, key=lambda p: (p.start, p.number))
    for before, after in itertools.pairwise(ordered):
        if after.start < before.end or (after.start == before.start == before.end == after.end):
            conflicts.append(
                Conflict(
                    "overlap",
                    path,
                    f"the hunk overlaps hunk #{before.number} (lines {before.start + 1}-"
                    f"{before.end}); merge them into one hunk",
                    after.number,
                    nearest=file._region(after.start, after.end),
                )
            )
    return conflicts


def _stated_index(hunk: Hunk) -> int:
    """The 0-based index the header says the hunk's old lines start at."""
    assert hunk.old_start is not None
    return hunk.old_start - 1 if hunk.old else hunk.old_start


def _positions(keys: list[str], wanted: list[str]) -> list[int]:
    first, size = wanted[0], len(wanted)
    return [
        at
        for at in range(len(keys) - size + 1)
        if keys[at] == first and keys[at : at + size] == wanted
    ]


def _sits_well(line: str, previous: str | None, following: str | None) -> bool:
    """Whether an added line's indentation fits the lines around it."""
    depth = _columns(_indentation(line), 8)
    if (
        previous is not None
        and previous.rstrip().endswith(_BLOCK_OPENERS)
        and not previous.lstrip().startswith(_COMMENT_STARTS)
    ):
        opener = _columns(_indentation(previous), 8)
        body = _columns(_indentation(following), 8) if following is not None else opener
        return depth == body if body > opener else depth > opener
    return any(
        neighbour is not None and depth == _columns(_indentation(neighbour), 8)
        for neighbour in (previous, following)
    )


def _closes(body: str, depth: int) -> bool:
    """Whether this line ends a block opened at indentation `depth`."""
    text = body.strip()
    return bool(text) and len(_indentation(body)) <= depth and not text.startswith((")", "]", "}"))


def _indentation(text: str) -> str:
    return text[: len(text) - len(text.lstrip())]


def _unchanged(text: str) -> str:
    return text


def _tab_conversion(pairs: set[tuple[str, str]]) -> Callable[[str], str] | None:
    """Tabs in the file where the hunk has spaces (or the reverse) at the same columns."""
    if not any("\t" in ours + theirs for ours, theirs in pairs):
        return None
    width = next(
        (
            width
            for width in _TAB_WIDTHS
            if all(_columns(ours, width) == _columns(theirs, width) for ours, theirs in pairs)
        ),
        None,
    )
    if width is None:
        return None
    tabs = any("\t" in theirs for _, theirs in pairs)

    def convert(text: str) -> str:
        indent = _indentation(text)
        columns = _columns(indent, width)
        if tabs:
            return "\t" * (columns // width) + " " * (columns % width) + text[len(indent) :]
        return " " * columns + text[len(indent) :]

    return convert


def _columns(indent: str, width: int) -> int:
    return len(indent.expandtabs(width))


def _uniform_shift(pairs: set[tuple[str, str]]) -> Callable[[str], str] | None:
    """The same indentation added or taken away on every line (one prefix for another)."""
    changes = {_prefix_change(ours, theirs) for ours, theirs in pairs}
    if len(changes) != 1:
        return None
    ((drop, add),) = changes

    def shift(text: str) -> str:
        if not text.strip() or not text.startswith(drop):
            return text
        return add + text[len(drop) :]

    return shift


def _prefix_change(ours: str, theirs: str) -> tuple[str, str]:
    """(what to drop from the front of ours, what to put there) to make theirs."""
    common = 0
    while common < min(len(ours), len(theirs)) and ours[-1 - common] == theirs[-1 - common]:
        common += 1
    return ours[: len(ours) - common], theirs[: len(theirs) - common]
