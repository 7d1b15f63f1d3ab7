"""`agent-service ide` at a terminal: a real process in a pseudo-terminal, against a real stack."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from agent_service.stack import ServiceStack, StackConfig
from ide_client.sample import create_sample_workspace
from tests.support.stack import CLUSTER, TEST_TOKEN, running_stack, started_stack
from tests.support.terminal import Terminal, open_terminal

ROOT = Path(__file__).resolve().parents[1]
GREEN = "\x1b[32m"
RED = "\x1b[1;31m"
UP = "\x1b[A"
PASTE_START = "\x1b[200~"
PASTE_END = "\x1b[201~"
ADD_LOGGING = "Add logging to src/auth.js"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackConfig]:
    with running_stack(tmp_path_factory.mktemp("stack")) as config:
        yield config


@pytest.fixture(scope="module")
def slow_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackConfig]:
    """The demo model at 100 ms a word: a turn lasts long enough to type or press Ctrl-C."""
    extra = {"llm-proxy": ["--demo-delay-ms", "100"]}
    with running_stack(tmp_path_factory.mktemp("slow"), extra_args=extra) as config:
        yield config


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return create_sample_workspace(tmp_path / "ws")


def test_terminal_shows_a_spinner_then_the_change_as_a_coloured_diff_and_a_footer(
    stack: StackConfig, workspace: Path, tmp_path: Path
) -> None:
    terminal = open_terminal(stack, workspace, tmp_path)
    terminal.send(ADD_LOGGING + "\r")
    terminal.expect(r"thinking… \d+s · Ctrl-C to cancel")
    terminal.expect(re.escape(GREEN + '+  console.log("hashPassword called");'))
    terminal.expect(r"done · \d+\.\d+s · [\d,]+ tokens in, [\d,]+ out")
    terminal.prompt()
    assert terminal.quit() == 0
    shown = terminal.text
    assert "✓ read_file src/auth.js" in shown
    assert shown.index("✓ apply_patch") < shown.index("+++ b/src/auth.js")
    assert "Done. I added a log line" in shown
    assert shown.count('+  console.log("hashPassword called");') == 1, (
        "the model's git.diff is not shown again"
    )


def test_terminal_walks_the_history_with_the_arrow_keys_and_keeps_it_in_a_file(
    stack: StackConfig, workspace: Path, tmp_path: Path
) -> None:
    terminal = open_terminal(stack, workspace, tmp_path)
    terminal.send("/status\r")
    terminal.expect("tokens ")
    terminal.prompt()
    terminal.send(UP)
    terminal.expect("/status")
    terminal.send("\r")
    terminal.expect("tokens ")
    terminal.prompt()
    assert terminal.quit() == 0
    assert terminal.text.count("workspace  ") == 2
    assert "^[[A" not in terminal.text
    history = (tmp_path / "state" / "agent-service" / "ide-history").read_text()
    assert "+/status" in history


def test_terminal_handles_help_itself_and_sends_nothing_to_the_model(
    stack: StackConfig, workspace: Path, tmp_path: Path
) -> None:
    terminal = open_terminal(stack, workspace, tmp_path)
    terminal.send("/help\r")
    terminal.expect("/diff")
    terminal.prompt()
    terminal.send("quit\r")
    terminal.child.expect(pexpect.EOF)
    terminal.child.close()
    assert terminal.child.exitstatus == 0
    shown = terminal.text
    for command in ("/help", "/status", "/diff", "/undo", "/approval", "/new", "/quit"):
        assert command in shown
    assert "/mode" not in shown
    assert "offline demo model" not in shown
    assert "done ·" not in shown


def test_terminal_sends_a_pasted_four_line_message_as_one_turn(
    stack: StackConfig, workspace: Path, tmp_path: Path
) -> None:
    terminal = open_terminal(stack, workspace, tmp_path)
    terminal.send(PASTE_START + "first line\nsecond line\nthird line\nfourth line" + PASTE_END)
    terminal.send("\r")
    terminal.expect("done ·")
    terminal.prompt()
    terminal.send("/status\r")
    terminal.expect(r"turns +(\d+) in this run")
    turns = terminal.child.match.group(1)
    terminal.prompt()
    assert terminal.quit() == 0
    assert turns == "1"
    assert terminal.text.count("done ·") == 1


def test_terminal_shows_a_failed_tool_once_in_red(
    stack: StackConfig, workspace: Path, tmp_path: Path
) -> None:
    terminal = open_terminal(stack, workspace, tmp_path)
    terminal.send("Add logging to src/missing.js\r")
    terminal.expect("done ·")
    terminal.prompt()
    assert terminal.quit() == 0
    assert RED + "✗ read_file src/missing.js: not_found: src/missing.js: no such file" in (
        terminal.raw
    )
    lines = terminal.text.splitlines()
    assert [line for line in lines if "not_found" in line and "tool failed" not in line] == [
        "✗ read_file src/missing.js: not_found: src/missing.js: no such file"
    ]


def test_terminal_says_cancelled_when_ctrl_c_stops_a_turn(
    slow_stack: StackConfig, workspace: Path, tmp_path: Path
) -> None:
    terminal = open_terminal(slow_stack, workspace, tmp_path)
    terminal.send(ADD_LOGGING + "\r")
    terminal.expect("✓ read_file src/auth.js")
    terminal.send("\x03")
    terminal.expect(r"cancelled · \d+\.\d+s")
    terminal.prompt()
    assert terminal.quit() == 0
    assert "Done. I added" not in terminal.text
    assert "idle" not in terminal.text


def test_terminal_queues_what_is_typed_during_a_turn_as_the_next_message(
    slow_stack: StackConfig, workspace: Path, tmp_path: Path
) -> None:
    terminal = open_terminal(slow_stack, workspace, tmp_path)
    terminal.send(ADD_LOGGING + "\r")
    terminal.expect("running read_file")
    terminal.send("/status\r")
    terminal.expect(r"queued: (\x1b\[[0-9;]*m)*/status")
    terminal.expect("done ·")
    terminal.expect(r"turns +1 in this run")
    terminal.prompt()
    assert terminal.quit() == 0
    reply = terminal.text.split("queued: /status", 1)[1].split("done ·", 1)[0]
    assert "/status" not in reply


def test_terminal_reconnects_when_the_stack_restarted_while_it_was_idle(
    tmp_path: Path, workspace: Path
) -> None:
    stack: ServiceStack
    with started_stack(tmp_path) as stack:
        terminal = open_terminal(stack.config, workspace, tmp_path)
        stack.restart("orchestrator")
        stack.restart("gateway")
        terminal.send(ADD_LOGGING + "\r")
        terminal.expect("resuming session")
        if not CLUSTER:
            # without a broker the session was in the orchestrator that stopped
            terminal.expect("starting a new session")
        terminal.expect("done ·")
        terminal.prompt()
        assert terminal.quit() == 0
    assert "Done. I added a log line" in terminal.text


def test_terminal_continues_the_last_session_of_the_workspace(
    stack: StackConfig, workspace: Path, tmp_path: Path
) -> None:
    first = open_terminal(stack, workspace, tmp_path)
    session = re.search(r"Session (\S+) in", first.text)
    assert session is not None
    assert first.quit() == 0
    again = open_terminal(stack, workspace, tmp_path, "--continue")
    again.send("/status\r")
    again.expect(r"session +(\S+) ")
    assert again.child.match.group(1) == session.group(1)
    again.prompt()
    assert again.quit() == 0


def test_terminal_clears_the_line_on_ctrl_c_and_quits_on_ctrl_c_at_an_empty_prompt(
    stack: StackConfig, workspace: Path, tmp_path: Path
) -> None:
    terminal = open_terminal(stack, workspace, tmp_path)
    terminal.send("a draft")
    terminal.expect("a draft")
    terminal.send("\x03")
    terminal.send("/status\r")
    terminal.expect("workspace  ")
    terminal.prompt()
    terminal.send("\x03")
    terminal.child.expect(pexpect.EOF)
    terminal.child.close()
    assert terminal.child.exitstatus == 0
    assert "done ·" not in terminal.text


def test_terminal_draws_a_single_message_turn_too(
    stack: StackConfig, workspace: Path, tmp_path: Path
) -> None:
    terminal = Terminal(stack.gateway_url, workspace, tmp_path / "state", ADD_LOGGING)
    terminal.expect(r"Ctrl-C to cancel")
    terminal.expect(r"done · ")
    terminal.child.expect(pexpect.EOF)
    terminal.child.close()
    assert terminal.child.exitstatus == 0
    assert GREEN + "+" in terminal.raw


def test_terminal_stays_plain_with_no_color(
    stack: StackConfig, workspace: Path, tmp_path: Path
) -> None:
    terminal = Terminal(stack.gateway_url, workspace, tmp_path / "state", ADD_LOGGING, NO_COLOR="1")
    terminal.child.expect(pexpect.EOF)
    terminal.child.close()
    assert terminal.child.exitstatus == 0
    assert "[tool] read_file src/auth.js -> ok" in terminal.text
    assert "\x1b[" not in terminal.raw
    assert "Ctrl-C to cancel" not in terminal.raw


def run_piped(*args: str, stdin: str, state: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    return subprocess.run(
        [sys.executable, "-m", "agent_service", "ide", *args, "--token", TEST_TOKEN],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**clean, "TERM": "xterm-256color", "XDG_STATE_HOME": str(state)},
        timeout=60,
        check=False,
    )


def test_piped_ide_prints_plain_lines_and_sends_no_slash_command(
    stack: StackConfig, workspace: Path, tmp_path: Path
) -> None:
    done = run_piped(
        "--workspace",
        str(workspace),
        "--url",
        stack.gateway_url,
        stdin=f"/help\n{ADD_LOGGING}\nquit\nAdd logging to src/other.js\n",
        state=tmp_path / "state",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("[tool] apply_patch -> ok (src/auth.js)") == 1
    assert "src/other.js" not in done.stdout
    assert "offline demo model built into" not in done.stdout
    assert "slash commands need a terminal" in done.stderr
    assert "\x1b[" not in done.stdout + done.stderr
    assert "Ctrl-C to cancel" not in done.stdout + done.stderr


def test_continue_without_a_remembered_session_says_so(workspace: Path, tmp_path: Path) -> None:
    done = run_piped(
        "--workspace", str(workspace), "--continue", stdin="", state=tmp_path / "empty"
    )
    assert done.returncode == 2
    assert done.stderr.startswith("agent-service ide: no session to continue in ")
    assert "Traceback" not in done.stderr


def test_resume_goes_on_after_the_last_event_of_an_earlier_run(
    stack: StackConfig, workspace: Path, tmp_path: Path
) -> None:
    where = ("--workspace", str(workspace), "--url", stack.gateway_url)
    first = run_piped(*where, ADD_LOGGING, stdin="", state=tmp_path / "first")
    assert first.returncode == 0, first.stderr
    remembered = json.loads((tmp_path / "first/agent-service/ide-sessions.json").read_text())
    [(_, entry)] = remembered.items()

    again = run_piped(
        *where, "--resume", entry["session_id"], ADD_LOGGING, stdin="", state=tmp_path / "new"
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("[tool] read_file src/auth.js -> ok\n")
    assert "nothing to change" in again.stdout
    assert "apply_patch" not in again.stdout, "the earlier run's calls are neither shown nor run"
