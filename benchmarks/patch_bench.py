"""`agent-service bench patches`: apply the patch corpus with our apply_patch, `git apply`, GNU patch.

Each case runs in a fresh directory holding the case's files. The outcome is judged by the
files, not by what the tool says: `applied` (every file exactly as intended), `refused`
(every file untouched) or `wrong` (anything else: a wrong place, a partial application).
For our tool, a refusal of a case with a known differing line is also checked to name
that line. Prints one table per tool column and writes every figure as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.patch_corpus import Case, build_corpus, kinds, source_files
from ide_client import ToolFailure, ToolRunner, Workspace

APPLIED, REFUSED, WRONG = "applied", "refused", "wrong"


@dataclass(frozen=True)
class Outcome:
    """What one tool did with one case; `named_line` for our refusals of a differing line."""

    result: str
    named_line: bool | None = None


Runner = Callable[[Path, Case], bool | None]


def run_ours(directory: Path, case: Case) -> bool | None:
    """Our apply_patch through the reference IDE's tool; whether the refusal named the line."""
    try:
        ToolRunner(Workspace(directory)).run("apply_patch", {"diff": case.diff})
    except ToolFailure as failure:
        if case.differing_line is None:
            return None
        conflicts = (failure.details or {}).get("conflicts", [])
        return any(
            conflict.get("line") == case.differing_line
            and conflict.get("path") == case.differing_path
            and f"line {case.differing_line}" in failure.message
            for conflict in conflicts
        )
    return None


def run_git_apply(directory: Path, case: Case) -> bool | None:
    """`git apply` as it comes (strict: exact context, right counts, a/ b/ prefixes)."""
    _run(["git", "apply", "-"], directory, case.diff)
    return None


def run_gnu_patch(directory: Path, case: Case) -> bool | None:
    """GNU patch as tools call it: -p1, its default fuzz of 2, no backups, no reject files."""
    _run(
        ["patch", "-p1", "--batch", "--forward", "--no-backup-if-mismatch", "-r", "-", "-s"],
        directory,
        case.diff,
    )
    return None


def _run(command: list[str], directory: Path, diff: str) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    subprocess.run(
        command,
        cwd=directory,
        input=diff.encode(),
        capture_output=True,
        env=env,
        timeout=30,
        check=False,
    )


def judge(runner: Runner, case: Case, scratch: Path) -> Outcome:
    """Run one case in a fresh directory under `scratch` and compare the files it leaves."""
    directory = Path(tempfile.mkdtemp(dir=scratch))
    try:
        for path, data in case.before.items():
            (directory / path).parent.mkdir(parents=True, exist_ok=True)
            (directory / path).write_bytes(data)
        named = runner(directory, case)
        left = _snapshot(directory)
    finally:
        shutil.rmtree(directory)
    if left == case.after and case.after != case.before:
        return Outcome(APPLIED)
    if left == case.before:
        return Outcome(REFUSED, named)
    return Outcome(WRONG)


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


TOOLS: dict[str, Runner] = {
    "ours": run_ours,
    "git apply": run_git_apply,
    "GNU patch": run_gnu_patch,
}
REQUIRES = {"git apply": "git", "GNU patch": "patch"}


def available_tools() -> tuple[dict[str, Runner], list[str]]:
    """The tool columns this machine can run, and a note for each one it cannot."""
    tools: dict[str, Runner] = {}
    notes: list[str] = []
    for name, runner in TOOLS.items():
        program = REQUIRES.get(name)
        if program is not None and shutil.which(program) is None:
            notes.append(
                f"{name}: skipped, `{program}` is not installed (apt-get install {program})"
            )
            continue
        tools[name] = runner
    return tools, notes


def measure(cases: list[Case], tools: dict[str, Runner]) -> dict[str, Any]:
    """Counts per kind and tool: applied, refused, wrong; for ours, refusals naming the line."""
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="agent-service-patches-") as scratch:
        for kind, recoverable in kinds():
            of_kind = [case for case in cases if case.kind == kind]
            row: dict[str, Any] = {"recoverable": recoverable, "cases": len(of_kind)}
            for name, runner in tools.items():
                outcomes = [judge(runner, case, Path(scratch)) for case in of_kind]
                counts = Counter(outcome.result for outcome in outcomes)
                row[name] = {result: counts[result] for result in (APPLIED, REFUSED, WRONG)}
                named = [o.named_line for o in outcomes if o.named_line is not None]
                if named:
                    row[name]["named_line"] = sum(named)
            figures[kind] = row
    return figures


def totals(figures: dict[str, Any], tool: str) -> dict[str, int]:
    """Over all kinds: recoverable cases and how many applied; wrong applications anywhere."""
    recoverable = [row for row in figures.values() if row["recoverable"]]
    return {
        "recoverable": sum(row["cases"] for row in recoverable),
        "applied": sum(row[tool][APPLIED] for row in recoverable),
        "unrecoverable": sum(row["cases"] for row in figures.values() if not row["recoverable"]),
        "refused_unrecoverable": sum(
            row[tool][REFUSED] for row in figures.values() if not row["recoverable"]
        ),
        "wrong": sum(row[tool][WRONG] for row in figures.values()),
    }


def render(figures: dict[str, Any], tools: list[str]) -> str:
    """The figures as a Markdown table: applied / refused / wrong per kind and tool."""
    header = (
        "| defect | cases | "
        + " | ".join(f"{tool} (applied/refused/wrong)" for tool in tools)
        + " |"
    )
    lines = [header, "|---|---:|" + "---:|" * len(tools)]
    for kind, row in figures.items():
        mark = "" if row["recoverable"] else " (unrecoverable)"
        cells = [
            f"{row[tool][APPLIED]} / {row[tool][REFUSED]} / {row[tool][WRONG]}" for tool in tools
        ]
        lines.append(f"| {kind}{mark} | {row['cases']} | " + " | ".join(cells) + " |")
    lines.append("")
    for tool in tools:
        total = totals(figures, tool)
        share = 100 * total["applied"] / max(total["recoverable"], 1)
        lines.append(
            f"- {tool}: {total['applied']}/{total['recoverable']} recoverable applied as "
            f"intended ({share:.1f} %), {total['refused_unrecoverable']}/{total['unrecoverable']} "
            f"unrecoverable refused, {total['wrong']} wrong applications"
        )
    named = sum(row["ours"].get("named_line", 0) for row in figures.values() if "ours" in row)
    asked = sum(
        row["ours"][REFUSED]
        for kind, row in figures.items()
        if kind in ("wrong context", "stale file") and "ours" in row
    )
    if "ours" in tools:
        lines.append(f"- ours: {named}/{asked} refusals of a differing line name that line")
    return "\n".join(lines)


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of `agent-service bench patches`."""
    group = parser.add_argument_group("patches suite (agent-service bench patches)")
    group.add_argument("--seed", type=int, default=13, help="corpus seed (default %(default)s)")
    group.add_argument(
        "--cases-per-kind", type=int, default=40, help="cases of each defect (default %(default)s)"
    )
    group.add_argument(
        "--source",
        type=Path,
        action="append",
        metavar="DIR",
        help="build cases from the .py files under DIR (repeatable; default: this "
        "repository and the Python standard library)",
    )


def run(args: argparse.Namespace) -> int:
    """Build the corpus, apply it with every tool, print the table and write the JSON."""
    sources = source_files(args.source)
    cases = build_corpus(args.seed, args.cases_per_kind, sources)
    tools, notes = available_tools()
    figures = measure(cases, tools)
    print(render(figures, list(tools)))
    for note in notes:
        print(f"- {note}")
    results = {
        "seed": args.seed,
        "sources": len(sources),
        "figures": figures,
        "totals": {tool: totals(figures, tool) for tool in tools},
        "skipped": notes,
    }
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {args.json}")
    return 0
