"""The reference IDE declares the discovery tools, so a model that is told only a file's base name
finds it: "Add logging to auth.js" through the real stack, the demo model and `agent-service ide`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from agent_service.stack import StackConfig
from ide_client.sample import create_sample_workspace
from tests.support.procs import ROOT
from tests.support.stack import running_stack


def test_add_logging_to_a_base_name_finds_the_file_with_list_files(tmp_path: Path) -> None:
    with running_stack(tmp_path) as stack:
        shown = _ide_turn(stack, tmp_path)
    assert "list_files" in shown
    assert shown.index("list_files") < shown.index("read_file") < shown.index("apply_patch")


def _ide_turn(stack: StackConfig, tmp_path: Path) -> str:
    workspace = create_sample_workspace(tmp_path / "ws")
    original = (workspace / "src/auth.js").read_text()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    flags = ["--workspace", str(workspace), "--url", stack.gateway_url, "--token", stack.token]
    done = subprocess.run(
        [sys.executable, "-m", "agent_service", "ide", "Add logging to auth.js", *flags],
        cwd=ROOT,
        env={**clean, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    patched = (workspace / "src/auth.js").read_text()
    assert patched != original and "console.log" in patched
    return done.stdout + done.stderr
