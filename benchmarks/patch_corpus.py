"""A corpus of diffs as models write them, built from real source files, each with its answer.

Every case starts from a real file (this repository's, the Python standard library's, or
any directory given), makes an intended edit at places whose hunk is unique in the file
(one to three edits: a line inserted, changed or deleted), writes the clean diff `git diff`
would write, then damages it the way models do (`RECOVERABLE`): the intended result is
known, so an application is right or wrong by comparison. `UNRECOVERABLE` cases cannot be
applied as intended by anyone (context that is not in the file, a file changed since the
diff was made, a hunk that fits two places): the only right outcome is a refusal.
Deterministic: the same seed and sources give the same corpus.
"""

from __future__ import annotations

import difflib
import itertools
import random
import re
import sysconfig
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIN_BYTES, MAX_BYTES = 2_000, 120_000
CONTEXT = 3


@dataclass(frozen=True)
class Case:
    """One diff to apply: the files before, the diff, and the files as intended after.

    `differing_line` is the 1-based line of the file a refusal must name (unrecoverable
    cases whose hunk has a line that differs from the file).
    """

    kind: str
    before: dict[str, bytes]
    diff: str
    after: dict[str, bytes]
    differing_line: int | None = None
    differing_path: str | None = None


@dataclass(frozen=True)
class _Edit:
    """One file, its text before and after the intended edit, and its clean diff's hunks."""

    path: str
    before: str
    after: str
    hunks: list[list[str]] = field(default_factory=list)


def source_files(directories: Sequence[Path] | None = None) -> list[tuple[str, str]]:
    """(path, text) of the real files to build cases from, in a stable order."""
    roots = list(directories) if directories else [ROOT, Path(sysconfig.get_paths()["stdlib"])]
    found: list[tuple[str, str]] = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if any(
                part.startswith(".") or part in ("site-packages", "test", "tests")
                for part in path.relative_to(root).parts
            ):
                continue
            try:
                size = path.stat().st_size
                if not MIN_BYTES <= size <= MAX_BYTES:
                    continue
                text = path.read_text("utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if "\r" in text or "\t" in text or not text.endswith("\n"):
                continue
            found.append((f"{root.name}/{path.relative_to(root).as_posix()}", text))
    return found


def build_corpus(seed: int, per_kind: int, sources: list[tuple[str, str]]) -> list[Case]:
    """`per_kind` cases of every defect kind, from files drawn out of `sources` by `seed`."""
    rng = random.Random(seed)
    cases: list[Case] = []
    for kind, make in KINDS.items():
        made = 0
        attempts = 0
        while made < per_kind and attempts < per_kind * 20:
            attempts += 1
            case = make(rng, sources)
            if case is not None:
                cases.append(replace(case, kind=kind))
                made += 1
    return cases


# ---- intended edits -------------------------------------------------------------------------


def _edit(rng: random.Random, path: str, text: str, count: int) -> _Edit | None:
    """One to three edits far apart, each of whose hunks is unique in the file, or None."""
    lines = text.splitlines(keepends=True)
    sites = [index for index, line in enumerate(lines) if line.strip() and index > 2]
    if len(sites) < count * 4:
        return None
    chosen = sorted(rng.sample(sites, count))
    if any(later - earlier < 2 * CONTEXT + 4 for earlier, later in itertools.pairwise(chosen)):
        return None
    after = list(lines)
    for site in reversed(chosen):
        line = lines[site]
        indent = line[: len(line) - len(line.lstrip())]
        action = rng.choice(("insert", "change", "delete"))
        if action == "insert":
            after.insert(site, f"{indent}trace('bench edit at line {site + 1}')\n")
        elif action == "change":
            after[site] = line.rstrip("\n") + "  # changed\n"
        else:
            del after[site]
    edit = _Edit(path, text, "".join(after))
    hunks = _hunks(edit)
    if len(hunks) != count or not all(_unique(lines, hunk) for hunk in hunks):
        return None
    return replace(edit, hunks=hunks)


def _hunks(edit: _Edit) -> list[list[str]]:
    """The clean diff's hunks, each as its lines (header first, no line endings)."""
    body = list(
        difflib.unified_diff(
            edit.before.splitlines(keepends=True), edit.after.splitlines(keepends=True), n=CONTEXT
        )
    )[2:]
    hunks: list[list[str]] = []
    for line in body:
        if line.startswith("@@"):
            hunks.append([line.rstrip("\n")])
        else:
            hunks[-1].append(line.rstrip("\n"))
    return hunks


def _unique(lines: list[str], hunk: list[str]) -> bool:
    old = [" ".join(line[1:].split()) for line in hunk[1:] if line[0] in " -"]
    keys = [" ".join(line.split()) for line in lines]
    return sum(keys[at : at + len(old)] == old for at in range(len(keys) - len(old) + 1)) == 1


def _diff(
    edit: _Edit, hunks: list[list[str]] | None = None, *, git: bool = True, prefixes: bool = True
) -> str:
    old, new = (f"a/{edit.path}", f"b/{edit.path}") if prefixes else (edit.path, edit.path)
    head = [f"diff --git a/{edit.path} b/{edit.path}"] if git else []
    head += [f"--- {old}", f"+++ {new}"]
    return "\n".join(head + [line for hunk in (hunks or edit.hunks) for line in hunk]) + "\n"


def _case(edits: list[_Edit], diff: str) -> Case:
    return Case(
        "",
        {edit.path: edit.before.encode() for edit in edits},
        diff,
        {edit.path: edit.after.encode() for edit in edits},
    )


def _one(rng: random.Random, sources: list[tuple[str, str]], count: int = 1) -> _Edit | None:
    path, text = rng.choice(sources)
    return _edit(rng, path, text, count)


Maker = Callable[[random.Random, list[tuple[str, str]]], Case | None]


def _simple(transform: Callable[[random.Random, _Edit], str], count: int = 1) -> Maker:
    """A kind made of one file's edit and a transformation of its clean diff."""

    def make(rng: random.Random, sources: list[tuple[str, str]]) -> Case | None:
        edit = _one(rng, sources, rng.randint(1, 3) if count == 0 else count)
        return None if edit is None else _case([edit], transform(rng, edit))

    return make


# ---- recoverable defects --------------------------------------------------------------------

_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$")


def _renumber(
    hunk: list[str], change: Callable[[int, int, int, int], tuple[int, int, int, int]]
) -> list[str]:
    match = _HEADER.match(hunk[0])
    assert match is not None
    numbers = [int(match[index] or 1) for index in (1, 2, 3, 4)]
    a, b, c, d = change(*numbers)
    return [f"@@ -{a},{b} +{c},{d} @@{match[5]}", *hunk[1:]]


def _line_numbers_off(rng: random.Random, edit: _Edit) -> str:
    shift = rng.choice((-1, 1)) * rng.randint(3, 40)
    return _diff(
        edit,
        [
            _renumber(h, lambda a, b, c, d: (max(a + shift, 1), b, max(c + shift, 1), d))
            for h in edit.hunks
        ],
    )


def _counts_off(rng: random.Random, edit: _Edit) -> str:
    return _diff(
        edit,
        [
            _renumber(
                h,
                lambda a, b, c, d: (
                    a,
                    max(b + rng.choice((-2, -1, 1, 2)), 0),
                    c,
                    max(d + rng.choice((-1, 1, 3)), 0),
                ),
            )
            for h in edit.hunks
        ],
    )


def _bare_headers(rng: random.Random, edit: _Edit) -> str:
    return _diff(edit, [[rng.choice(("@@", "@@ ... @@", "@@ @@")), *h[1:]] for h in edit.hunks])


def _no_git_header(rng: random.Random, edit: _Edit) -> str:
    return _diff(edit, git=False)


def _no_prefixes(rng: random.Random, edit: _Edit) -> str:
    return _diff(edit, git=False, prefixes=False)


def _fenced_in_prose(rng: random.Random, edit: _Edit) -> str:
    return (
        f"Here is the change to `{edit.path}`:\n\n```diff\n{_diff(edit)}```\n\n"
        "It keeps the behaviour the same otherwise. Let me know if you want tests.\n"
    )


def _whitespace_in_context(rng: random.Random, edit: _Edit) -> str:
    def damaged(line: str) -> str:
        if line == " ":
            return ""
        if line.startswith(" ") and rng.random() < 0.5:
            return line + rng.choice(("  ", " ", "\t"))
        return line

    return _diff(edit, [[h[0], *(damaged(line) for line in h[1:])] for h in edit.hunks])


def _reindented(rng: random.Random, edit: _Edit) -> str:
    shift = rng.choice(("  ", "    "))

    def moved(line: str) -> str:
        return line[0] + shift + line[1:] if line[1:].strip() else line

    return _diff(edit, [[h[0], *(moved(line) for line in h[1:])] for h in edit.hunks])


def _context_reindented(rng: random.Random, edit: _Edit) -> str:
    """Only the context lines moved: removed and added lines are as the file wants them."""
    shift = rng.choice(("  ", "    "))

    def moved(line: str) -> str:
        return " " + shift + line[1:] if line.startswith(" ") and line[1:].strip() else line

    return _diff(edit, [[h[0], *(moved(line) for line in h[1:])] for h in edit.hunks])


def _tabs_for_spaces(rng: random.Random, sources: list[tuple[str, str]]) -> Case | None:
    """The file is indented with tabs; the model's diff has the tabs as four spaces."""
    path, text = rng.choice(sources)
    edit = _edit(rng, path, _tabbed(text), rng.randint(1, 2))
    if edit is None:
        return None
    spaced = [[h[0], *(line[0] + line[1:].expandtabs(4) for line in h[1:])] for h in edit.hunks]
    return _case([edit], _diff(edit, spaced))


def _tabbed(text: str) -> str:
    def tabs(match: re.Match[str]) -> str:
        return "\t" * (len(match[0]) // 4) + " " * (len(match[0]) % 4)

    return re.sub(r"(?m)^ +", tabs, text)


def _crlf_file(rng: random.Random, sources: list[tuple[str, str]]) -> Case | None:
    """The file has CRLF line endings; the model's diff has LF."""
    edit = _one(rng, sources, rng.randint(1, 2))
    if edit is None:
        return None
    case = _case([edit], _diff(edit))
    return replace(
        case,
        before={path: data.replace(b"\n", b"\r\n") for path, data in case.before.items()},
        after={path: data.replace(b"\n", b"\r\n") for path, data in case.after.items()},
    )


def _out_of_order(rng: random.Random, edit: _Edit) -> str:
    return _diff(edit, list(reversed(edit.hunks)))


def _several_files(rng: random.Random, sources: list[tuple[str, str]]) -> Case | None:
    edits = [_one(rng, sources, rng.randint(1, 2)) for _ in range(rng.randint(2, 3))]
    if any(edit is None for edit in edits) or len({e.path for e in edits if e}) != len(edits):
        return None
    chosen = [edit for edit in edits if edit is not None]
    return _case(chosen, "".join(_diff(edit) for edit in chosen))


def _v4a(rng: random.Random, sources: list[tuple[str, str]]) -> Case | None:
    """The `*** Begin Patch` format: an updated file (and sometimes a new one)."""
    edit = _one(rng, sources, rng.randint(1, 3))
    if edit is None:
        return None
    chunks = [line for hunk in edit.hunks for line in ["@@", *hunk[1:]]]
    lines = ["*** Begin Patch", f"*** Update File: {edit.path}", *chunks]
    case = _case([edit], "")
    if rng.random() < 0.5:
        new_path = edit.path.rsplit("/", 1)[0] + "/added_by_patch.txt"
        lines += [f"*** Add File: {new_path}", "+first line", "+second line"]
        case = replace(case, after={**case.after, new_path: b"first line\nsecond line\n"})
    return replace(case, diff="\n".join([*lines, "*** End Patch"]) + "\n")


# ---- unrecoverable --------------------------------------------------------------------------


def _wrong_context(rng: random.Random, sources: list[tuple[str, str]]) -> Case | None:
    """A context line the model got wrong: it is not what the file has there."""
    edit = _one(rng, sources, 1)
    if edit is None:
        return None
    hunk = list(edit.hunks[0])
    first_line = _start(hunk[0])
    contexts = [
        index for index, line in enumerate(hunk) if index and line.startswith(" ") and line.strip()
    ]
    if not contexts:
        return None
    pick = rng.choice(contexts)
    hunk[pick] = hunk[pick] + " or_something_else"
    line = first_line + sum(1 for line in hunk[1:pick] if line[0] in " -")
    case = _case([edit], _diff(edit, [hunk]))
    return replace(case, after=case.before, differing_line=line, differing_path=edit.path)


def _stale_file(rng: random.Random, sources: list[tuple[str, str]]) -> Case | None:
    """The file changed after the model read it: a line the hunk expects was edited."""
    edit = _one(rng, sources, 1)
    if edit is None:
        return None
    hunk = edit.hunks[0]
    old = [index for index, line in enumerate(hunk) if index and line[0] in " -" and line.strip()]
    pick = rng.choice(old)
    line = _start(hunk[0]) + sum(1 for entry in hunk[1:pick] if entry[0] in " -")
    lines = edit.before.splitlines(keepends=True)
    lines[line - 1] = lines[line - 1].rstrip("\n") + "  # edited by the user meanwhile\n"
    stale = "".join(lines).encode()
    return Case("", {edit.path: stale}, _diff(edit), {edit.path: stale}, line, edit.path)


def _ambiguous(misnumbered: bool) -> Maker:
    """A hunk whose lines fit two places of the file, with nothing to tell which one."""

    def make(rng: random.Random, sources: list[tuple[str, str]]) -> Case | None:
        path, text = rng.choice(sources)
        lines = text.splitlines(keepends=True)
        places: dict[str, list[int]] = {}
        for index in range(len(lines) - 1):
            block = "".join(lines[index : index + 2])
            if len(block.strip()) > 12:
                places.setdefault(block, []).append(index)
        repeated = sorted(block for block, at in places.items() if len(at) >= 2)
        if not repeated:
            return None
        block = rng.choice(repeated)
        first, second = places[block][0], places[block][1]
        indent = lines[first][: len(lines[first]) - len(lines[first].lstrip())]
        added = f"{indent}trace('bench edit')"
        start = second + 1 + rng.choice((-7, -5, 5, 7)) if misnumbered else None
        if start is not None and start - 1 in places[block]:
            return None  # a number that names one of the places is a sign, not a defect
        header = f"@@ -{max(start, 1)},2 +{max(start, 1)},3 @@" if start is not None else "@@"
        body = [" " + line.rstrip("\n") for line in lines[first : first + 2]] + ["+" + added]
        edit = _Edit(path, text, text)
        return _case([edit], _diff(edit, [[header, *body]]))

    return make


def _start(header: str) -> int:
    match = _HEADER.match(header)
    assert match is not None
    return int(match[1])


RECOVERABLE: dict[str, Maker] = {
    "clean": _simple(lambda rng, edit: _diff(edit), 0),
    "line numbers off": _simple(_line_numbers_off, 0),
    "counts off": _simple(_counts_off, 0),
    "bare @@ headers": _simple(_bare_headers, 0),
    "no diff --git line": _simple(_no_git_header, 0),
    "no a/ b/ prefixes": _simple(_no_prefixes, 0),
    "fenced, in prose": _simple(_fenced_in_prose, 0),
    "context whitespace": _simple(_whitespace_in_context, 0),
    "re-indented": _simple(_reindented, 0),
    "context re-indented": _simple(_context_reindented, 0),
    "tabs as spaces": _tabs_for_spaces,
    "CRLF file, LF diff": _crlf_file,
    "hunks out of order": _simple(_out_of_order, 3),
    "several files": _several_files,
    "V4A (*** Begin Patch)": _v4a,
}
UNRECOVERABLE: dict[str, Maker] = {
    "wrong context": _wrong_context,
    "stale file": _stale_file,
    "ambiguous, no numbers": _ambiguous(misnumbered=False),
    "ambiguous, numbers off": _ambiguous(misnumbered=True),
}
KINDS: dict[str, Maker] = {**RECOVERABLE, **UNRECOVERABLE}


def kinds() -> Iterator[tuple[str, bool]]:
    """Every kind with whether it is recoverable."""
    for kind in KINDS:
        yield kind, kind in RECOVERABLE
