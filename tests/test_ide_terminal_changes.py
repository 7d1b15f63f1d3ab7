"""The terminal shows the diff of every change, computed by the IDE from the tool call."""

from __future__ import annotations

from pathlib import Path

from ide_client.sample import AUTH_JS, create_sample_workspace
from ide_client.terminal.changes import ChangeRecorder
from ide_client.tools import ToolRunner
from ide_client.workspace import Workspace
from wire import ToolCall


def call(tool: str, **arguments: object) -> ToolCall:
    return ToolCall(session_id="s", seq=1, call_id=f"c-{tool}", tool=tool, arguments=arguments)


def recorder(tmp_path: Path) -> ChangeRecorder:
    return ChangeRecorder(ToolRunner(Workspace(create_sample_workspace(tmp_path / "ws"))))


def test_write_file_shows_the_lines_it_changed(tmp_path: Path) -> None:
    changes = recorder(tmp_path)
    content = AUTH_JS.replace("const sessions", "// cached\nconst sessions", 1)
    result = changes.answer(call("write_file", path="src/auth.js", content=content))
    assert result.ok
    diff = changes.diff_for("c-write_file")
    assert diff is not None
    assert diff.startswith("--- a/src/auth.js\n+++ b/src/auth.js\n@@ ")
    assert "+// cached\n" in diff
    assert changes.diff_for("c-write_file") is None, "each diff is shown once"


def test_a_new_file_shows_as_added_from_nothing(tmp_path: Path) -> None:
    changes = recorder(tmp_path)
    changes.answer(call("write_file", path="docs/new.md", content="# New\n"))
    assert (
        changes.diff_for("c-write_file")
        == "--- /dev/null\n+++ b/docs/new.md\n@@ -0,0 +1 @@\n+# New\n"
    )


def test_a_failed_or_reading_call_has_no_diff(tmp_path: Path) -> None:
    changes = recorder(tmp_path)
    assert not changes.answer(call("apply_patch", diff="not a diff")).ok
    changes.answer(call("read_file", path="src/auth.js"))
    assert changes.diff_for("c-apply_patch") is None
    assert changes.diff_for("c-read_file") is None


def test_workspace_diff_is_git_diff_of_the_workspace(tmp_path: Path) -> None:
    changes = recorder(tmp_path)
    assert changes.workspace_diff() == ""
    changes.answer(call("write_file", path="src/auth.js", content=AUTH_JS + "// end\n"))
    assert "+// end" in changes.workspace_diff()
