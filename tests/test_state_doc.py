"""docs/state-machine.md is what `orchestrator.statedoc` renders from the code, and stays so."""

from __future__ import annotations

import subprocess
import sys

from orchestrator.statedoc import DOC_PATH, REGENERATE, render
from orchestrator.table import TRANSITIONS
from tests.support.procs import ROOT


def test_state_doc_matches_the_code_when_committed() -> None:
    committed = DOC_PATH.read_text(encoding="utf-8") if DOC_PATH.exists() else ""

    assert committed == render(), f"{DOC_PATH.name} is stale: regenerate it with `{REGENERATE}`"


def test_state_doc_draws_every_state_change_of_the_table_in_its_diagram() -> None:
    page = render()
    diagram = page[page.index("```mermaid") :]

    for row in TRANSITIONS:
        if row["dest"] is None:
            continue
        sources = row["source"] if isinstance(row["source"], list) else [row["source"]]
        for source in sources:
            assert f"{source.name} --> {row['dest'].name}: " in diagram, row
    assert "--> STREAMING: user_message" in diagram and "[*] --> IDLE" in diagram


def test_statedoc_prints_the_page_when_run_as_a_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.statedoc"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )

    assert done.stdout == render()


def test_core_and_its_doc_generator_never_import_sanic() -> None:
    probe = (
        "import sys, orchestrator.core, orchestrator.statedoc; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sanic'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )

    assert done.stdout.strip() == "[]"
