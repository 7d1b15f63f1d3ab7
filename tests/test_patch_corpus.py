"""The apply_patch corpus: model-style defects on real source files, judged by the files left behind.

A correctness check, not a timing: every recoverable defect applies exactly as intended
(at least 98 % overall), every unrecoverable case is refused with the files untouched, and
the refusal names the line that differs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.patch_bench import measure, run_ours, totals
from benchmarks.patch_corpus import RECOVERABLE, UNRECOVERABLE, build_corpus, source_files

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("seed", [13, 2027], ids=["bench-seed", "other-seed"])
def test_apply_patch_applies_every_recoverable_defect_and_refuses_every_unrecoverable_one(
    seed: int,
) -> None:
    cases = build_corpus(seed, 12, source_files())
    assert {case.kind for case in cases} == set(RECOVERABLE) | set(UNRECOVERABLE)

    figures = measure(cases, {"ours": run_ours})

    total = totals(figures, "ours")
    assert total["wrong"] == 0, figures
    assert total["applied"] >= 0.98 * total["recoverable"], figures
    assert total["refused_unrecoverable"] == total["unrecoverable"], figures
    for kind in ("wrong context", "stale file"):
        ours = figures[kind]["ours"]
        assert ours["named_line"] == ours["refused"] == figures[kind]["cases"], figures[kind]


def test_bench_patches_prints_every_tool_column_and_writes_the_figures(tmp_path: Path) -> None:
    out = tmp_path / "patches.json"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "agent_service", "bench", "patches"),
            *("--cases-per-kind", "1", "--json", str(out)),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "| defect | cases | ours (applied/refused/wrong)" in done.stdout
    results = json.loads(out.read_text())
    assert set(results["figures"]) == set(RECOVERABLE) | set(UNRECOVERABLE)
    assert "ours" in results["totals"]
    for tool, program in (("git apply", "git"), ("GNU patch", "patch")):
        skipped = any(note.startswith(tool) for note in results["skipped"])
        assert (tool in results["totals"]) != skipped, program
