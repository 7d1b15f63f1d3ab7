"""`acpx`, an ACP client written by others (npm, pinned in tests/acpx/), runs the demo turn.

acpx starts `agent-service acp` itself with no --url, so this also covers the bridge starting
and stopping its own local service.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ide_client.sample import AUTH_JS, create_sample_workspace
from tests.support.procs import ROOT

HARNESS = ROOT / "tests" / "acpx"
ACPX = HARNESS / "node_modules" / ".bin" / "acpx"


@pytest.fixture(scope="module")
def acpx() -> Path:
    """The pinned acpx, installed from the lock file when `make test` has not done it yet."""
    if not ACPX.exists():
        npm = shutil.which("npm")
        assert npm, "acpx needs Node.js and npm (node >= 18): install them, then `make test`"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=HARNESS, check=True)
    return ACPX


def agent_service_on_path(bin_dir: Path) -> str:
    """A PATH whose `agent-service` is this interpreter running this tree."""
    bin_dir.mkdir()
    shim = bin_dir / "agent-service"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m agent_service "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    return f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.mark.timeout(170)
def test_acpx_adds_logging_through_agent_service_acp(acpx: Path, tmp_path: Path) -> None:
    workspace = create_sample_workspace(tmp_path / "ws")
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "PATH": agent_service_on_path(tmp_path / "bin"),
        "PYTHONPATH": str(ROOT),
        "HOME": str(home),
        "AGENT_DEMO_DELAY_MS": "0",
    }
    done = subprocess.run(
        [
            str(acpx),
            "--agent",
            "agent-service acp",
            "--cwd",
            str(workspace),
            "--approve-all",
            "exec",
            "Add logging to src/auth.js",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    report = f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    assert done.returncode == 0, report
    changed = (workspace / "src/auth.js").read_text()
    assert changed != AUTH_JS and 'console.log("login called' in changed, report
    assert "session/request_permission" in done.stdout, report
    assert "fs/write_text_file" in done.stdout, report
    assert "[done] end_turn" in done.stdout, report
