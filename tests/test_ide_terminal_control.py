"""The user in control at the terminal: approvals with the diff, /approval, /undo, non-git refusal.

`agent-service ide` in a pseudo-terminal against the real services, whose model is a fake
OpenAI upstream scripted per test (so what the model was told can be read back).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_service.stack import StackConfig
from ide_client.sample import AUTH_JS, README_MD, create_sample_workspace
from tests.support.fake_upstream import (
    FAKE_MODEL,
    FakeUpstream,
    Step,
    text_stream,
    tool_call_stream,
)
from tests.support.stack import TEST_TOKEN, running_stack
from tests.support.terminal import ROOT, open_terminal

GREEN = "\x1b[32m"
ADD_LINE = """\
--- a/src/auth.js
+++ b/src/auth.js
@@ -1,2 +1,3 @@
 // Session authentication for the sample app.
+// Logged.
 const crypto = require("crypto");
"""


@pytest.fixture(scope="module")
def stack(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StackConfig]:
    log_dir = tmp_path_factory.mktemp("stack")
    with running_stack(log_dir, llm_base_url=upstream.base_url, model=FAKE_MODEL) as config:
        yield config


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return create_sample_workspace(tmp_path / "ws")


def calls_then_answers(*calls: tuple[str, dict[str, Any]]) -> Any:
    """A model that makes `calls` at the start of each turn, then answers "Finished."."""

    def script(request: dict[str, Any]) -> list[Step]:
        if request["messages"][-1]["role"] == "tool":
            return text_stream("Finished.")
        return tool_call_stream([(name, json.dumps(arguments)) for name, arguments in calls])

    return script


def tool_messages(upstream: FakeUpstream) -> list[dict[str, Any]]:
    """The tool results of the last request the model got, decoded."""
    messages = upstream.requests[-1].json["messages"]
    return [json.loads(m["content"]) for m in messages if m["role"] == "tool"]


def test_ask_mode_shows_the_patch_and_writes_nothing_before_the_user_allows_it(
    stack: StackConfig, upstream: FakeUpstream, workspace: Path, tmp_path: Path
) -> None:
    upstream.reset(calls_then_answers(("apply_patch", {"diff": ADD_LINE})))
    terminal = open_terminal(stack, workspace, tmp_path, "--approval", "ask")
    terminal.send("log it\r")
    terminal.expect("apply_patch wants to apply a patch")
    terminal.expect(re.escape(GREEN + "+// Logged."))
    terminal.expect(r"Allow\? \[y\]es / \[a\]lways / \[n\]o \(\+ reason\)")
    assert (workspace / "src/auth.js").read_text() == AUTH_JS, "nothing written before the answer"
    terminal.send("maybe\r")
    terminal.expect("Answer y, a or n")
    terminal.send("y\r")
    terminal.expect("allowed")
    terminal.expect("done ·")
    terminal.prompt()
    assert terminal.quit() == 0
    assert "// Logged." in (workspace / "src/auth.js").read_text()
    assert terminal.text.count("+// Logged.") == 1, "the change is not shown twice"


def test_a_rejection_with_a_reason_writes_nothing_and_the_model_gets_the_reason(
    stack: StackConfig, upstream: FakeUpstream, workspace: Path, tmp_path: Path
) -> None:
    upstream.reset(
        calls_then_answers(("write_file", {"path": "README.md", "content": "# Replaced\n"}))
    )
    terminal = open_terminal(stack, workspace, tmp_path, "--approval", "ask")
    terminal.send("rewrite the readme\r")
    terminal.expect("write_file README.md wants to write README.md")
    terminal.expect(r"\+# Replaced")
    terminal.expect(r"Allow\?")
    terminal.send("n keep the old title\r")
    terminal.expect("rejected: keep the old title")
    terminal.expect("done ·")
    terminal.prompt()
    assert terminal.quit() == 0
    assert (workspace / "README.md").read_text() == README_MD
    [result] = tool_messages(upstream)
    assert result["error"]["code"] == "rejected_by_user"
    assert "keep the old title" in result["error"]["message"]


def test_approval_command_changes_the_mode_and_read_only_offers_no_write_tool(
    stack: StackConfig, upstream: FakeUpstream, workspace: Path, tmp_path: Path
) -> None:
    upstream.reset(lambda request: text_stream("Nothing to do."))
    terminal = open_terminal(stack, workspace, tmp_path, "--approval", "ask")
    terminal.send("/approval\r")
    terminal.expect(r"approval +ask \(read-only \| ask \| auto-edit\)")
    terminal.prompt()
    terminal.send("/approval read-only\r")
    terminal.expect("Approval mode: read-only.")
    terminal.prompt()
    terminal.send("/approval yolo\r")
    terminal.expect("unknown mode 'yolo'")
    terminal.prompt()
    terminal.send("hello\r")
    terminal.expect("done ·")
    terminal.prompt()
    assert terminal.quit() == 0
    offered = {tool["function"]["name"] for tool in upstream.requests[-1].json["tools"]}
    assert "write_file" not in offered and "apply_patch" not in offered
    assert "read_file" in offered


def test_undo_puts_back_the_last_turns_files_and_the_model_is_told(
    stack: StackConfig, upstream: FakeUpstream, workspace: Path, tmp_path: Path
) -> None:
    upstream.reset(
        calls_then_answers(
            ("apply_patch", {"diff": ADD_LINE}),
            ("write_file", {"path": "notes/todo.md", "content": "- log more\n"}),
        )
    )
    terminal = open_terminal(stack, workspace, tmp_path)
    terminal.send("log it and take a note\r")
    terminal.expect("done ·")
    terminal.prompt()
    assert (workspace / "notes/todo.md").exists()
    assert "// Logged." in (workspace / "src/auth.js").read_text()

    terminal.send("/undo\r")
    terminal.expect("Undone turn t1: notes/todo.md, src/auth.js back as before turn t1")
    terminal.prompt()
    assert (workspace / "src/auth.js").read_text() == AUTH_JS
    assert not (workspace / "notes/todo.md").exists()
    terminal.send("/undo\r")
    terminal.expect(r"nothing to undo.*\[nothing_to_undo\]")
    terminal.prompt()

    upstream.reset(lambda request: text_stream("Noted."))
    terminal.send("what changed?\r")
    terminal.expect("done ·")
    terminal.prompt()
    assert terminal.quit() == 0
    user_notes = [
        m["content"] for m in upstream.requests[-1].json["messages"] if m["role"] == "user"
    ]
    note = next(text for text in user_notes if "reverted" in text)
    assert "src/auth.js" in note and "notes/todo.md" in note
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=workspace, capture_output=True, text=True, check=True
    )
    assert status.stdout == "", "the checkpoints never show in git"


def test_undo_refuses_when_the_user_edited_the_file_since_unless_forced(
    stack: StackConfig, upstream: FakeUpstream, workspace: Path, tmp_path: Path
) -> None:
    upstream.reset(calls_then_answers(("apply_patch", {"diff": ADD_LINE})))
    terminal = open_terminal(stack, workspace, tmp_path)
    terminal.send("log it\r")
    terminal.expect("done ·")
    terminal.prompt()
    edited = (workspace / "src/auth.js").read_text() + "// mine\n"
    (workspace / "src/auth.js").write_text(edited)

    terminal.send("/undo t1\r")
    terminal.expect(r"src/auth\.js changed since turn t1")
    terminal.expect(r"\[changed_since\] \(/undo --force overwrites them\)")
    terminal.prompt()
    assert (workspace / "src/auth.js").read_text() == edited
    terminal.send("/undo t1 --force\r")
    terminal.expect("Undone turn t1")
    terminal.prompt()
    assert terminal.quit() == 0
    assert (workspace / "src/auth.js").read_text() == AUTH_JS


def run_plain(
    workspace: Path, stack_url: str, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "agent_service",
            "ide",
            "--workspace",
            str(workspace),
            "--url",
            stack_url,
            "--token",
            TEST_TOKEN,
            *args,
        ],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**clean, "NO_COLOR": "1"},
        timeout=60,
        check=False,
    )


def test_writes_are_refused_outside_a_git_repository_unless_allowed(
    stack: StackConfig, upstream: FakeUpstream, tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "a.txt").write_text("a\n")
    refused = run_plain(plain, stack.gateway_url, "hi")
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"agent-service ide: {plain} is not in a git repository")
    assert "--allow-non-git" in refused.stderr and "Traceback" not in refused.stderr

    upstream.reset(calls_then_answers(("write_file", {"path": "a.txt", "content": "b\n"})))
    allowed = run_plain(plain, stack.gateway_url, "--allow-non-git", "change it")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert (plain / "a.txt").read_text() == "b\n"

    upstream.reset(lambda request: text_stream("Only reading."))
    reading = run_plain(plain, stack.gateway_url, "--approval", "read-only", "look")
    assert reading.returncode == 0, reading.stdout + reading.stderr


def test_piped_ask_mode_reads_the_answer_from_stdin(
    stack: StackConfig, upstream: FakeUpstream, workspace: Path
) -> None:
    upstream.reset(calls_then_answers(("apply_patch", {"diff": ADD_LINE})))
    done = run_plain(
        workspace, stack.gateway_url, "--approval", "ask", "log it", stdin="n not now\n"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[approval] apply_patch wants to apply a patch" in done.stdout
    assert "+// Logged." in done.stdout
    assert (workspace / "src/auth.js").read_text() == AUTH_JS
    assert "not now" in tool_messages(upstream)[0]["error"]["message"]


def test_help_documents_approvals_undo_and_the_git_requirement() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "agent_service", "ide", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout
    for words in (
        "--approval",
        "read-only",
        "auto-edit",
        "--allow-non-git",
        "/undo t3",
        "/approval",
    ):
        assert words in shown, words
