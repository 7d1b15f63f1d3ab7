"""docs/ide-integration.md: every command on the page is run, here or by tests/test_ts_client.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support.protocol_schema import SCHEMA_FILE

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "ide-integration.md"
CLIENT_DIR = ROOT / "clients" / "typescript"
SHELL = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def commands() -> list[str]:
    """Every line of the page's `sh` blocks."""
    blocks = re.findall(r"```sh\n(.*?)```", PAGE.read_text(), re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def run(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["bash", "-c", f"set -euo pipefail; {command}"],
        cwd=cwd,
        env={**os.environ, **SHELL},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done


def test_page_lists_the_commands_the_stack_test_runs() -> None:
    lines = commands()
    assert lines[0] == "AGENT_TOKEN=my-dev-token agent-service up"
    assert lines[-1].startswith("node build/src/demo.js --url ws://127.0.0.1:8765/v1/ws --token ")
    assert {"--workspace", "--token", "--url"} <= set(lines[-1].split())


def test_schema_command_of_the_page_writes_the_committed_schema(tmp_path: Path) -> None:
    (schema_line,) = [line for line in commands() if line.startswith("agent-service schema")]
    run(schema_line, tmp_path)
    assert (
        tmp_path / "protocol.schema.json"
    ).read_text().strip() == SCHEMA_FILE.read_text().strip()


def test_generation_commands_of_the_page_run_in_the_client_package() -> None:
    generate = [line for line in commands() if line.startswith("npx ")]
    assert len(generate) == 3
    run("mkdir -p generated", CLIENT_DIR)
    for line in generate:
        run(line, CLIENT_DIR)
    assert "class ToolCall {" in (CLIENT_DIR / "generated" / "protocol.dart").read_text()
