"""`agent-service ide` in a pseudo-terminal, for the terminal's end-to-end tests."""

from __future__ import annotations

import io
import os
import re
import sys
from pathlib import Path

import pexpect

from agent_service.stack import StackConfig
from tests.support.stack import TEST_TOKEN

ROOT = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|[\x07\x08]")
PROMPT_READY = r"\x1b\[\?2004h"


class Terminal:
    """`agent-service ide` in a pseudo-terminal; everything it drew is kept in `screen`."""

    def __init__(self, url: str, workspace: Path, state: Path, *args: str, **env: str) -> None:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "NO_COLOR"))}
        self.output = io.StringIO()
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "agent_service", "ide", "--workspace", str(workspace), "--url", url, *args],
            cwd=str(ROOT),
            env={
                **clean,
                "TERM": "xterm-256color",
                "PROMPT_TOOLKIT_NO_CPR": "1",
                "XDG_STATE_HOME": str(state),
                "AGENT_TOKEN": TEST_TOKEN,
                # Tests of other things than approvals let the agent write (--approval wins).
                "AGENT_APPROVAL": "auto-edit",
                **env,
            },
            encoding="utf-8",
            dimensions=(50, 200),
            timeout=30,
        )
        self.child.logfile_read = self.output

    def expect(self, pattern: str) -> None:
        self.child.expect(pattern)

    def prompt(self) -> None:
        """Wait until the line editor is ready for input."""
        self.child.expect(PROMPT_READY)

    def send(self, keys: str) -> None:
        self.child.send(keys)

    def quit(self) -> int:
        self.child.send("\x15\x04")
        self.child.expect(pexpect.EOF)
        self.child.close()
        return int(self.child.exitstatus or 0)

    @property
    def raw(self) -> str:
        return self.output.getvalue()

    @property
    def text(self) -> str:
        """What the screen showed, colours and cursor moves taken out."""
        return ANSI.sub("", self.raw).replace("\r", "")


def open_terminal(
    config: StackConfig, workspace: Path, tmp_path: Path, *args: str, **env: str
) -> Terminal:
    terminal = Terminal(config.gateway_url, workspace, tmp_path / "state", *args, **env)
    terminal.expect("/help for commands")
    terminal.prompt()
    return terminal
