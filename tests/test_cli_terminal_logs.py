"""A service started at a terminal: readable log lines, and no advice about flags that do not
exist (Sanic's production-mode warning appears only on a TTY, so this runs in a pseudo-terminal)."""

from __future__ import annotations

import io
import os
import signal
import sys

import pexpect

from tests.support.procs import ROOT, free_port


def test_a_service_at_a_terminal_logs_text_lines_without_sanic_advice() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_LOG")}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "agent_service", "llm-proxy", "--proxy-port", str(port)],
        cwd=str(ROOT),
        env={**env, "NO_COLOR": "1"},
        encoding="utf-8",
        timeout=30,
    )
    seen = io.StringIO()
    child.logfile_read = seen
    child.expect("llm-proxy starting")
    child.expect("Worker ready")
    child.kill(signal.SIGTERM)
    child.expect(pexpect.EOF)
    child.close()
    text = seen.getvalue()
    lines = [line for line in text.splitlines() if line.strip()]
    assert child.exitstatus == 0, text
    assert "--debug" not in text and "--dev" not in text
    assert lines and not any(line.lstrip().startswith("{") for line in lines)
    assert all("Z " in line[:30] for line in lines if "llm-proxy:" in line)
