"""apply_patch takes the diffs models write (loose headers, prose, whitespace, V4A) and still never guesses."""

from __future__ import annotations

from pathlib import Path

import pytest

from ide_client import PlannedFile, plan_patch
from ide_client.errors import ToolCode, ToolFailure
from ide_client.patch import PatchConflict
from ide_client.tools import ToolRunner
from ide_client.workspace import Workspace
from wire import ToolCall

APP_PY = """\
import os


class Store:
    def __init__(self, root):
        self.root = root

    def load(self, name):
        path = os.path.join(self.root, name)
        with open(path) as file:
            return file.read()

    def save(self, name, text):
        path = os.path.join(self.root, name)
        with open(path, "w") as file:
            file.write(text)
"""

LOGGED = APP_PY.replace(
    "    def load(self, name):\n", "    def load(self, name):\n        print('load', name)\n"
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    directory = tmp_path / "ws"
    (directory / "src").mkdir(parents=True)
    (directory / "src" / "app.py").write_text(APP_PY)
    return directory


@pytest.fixture
def tools(root: Path) -> ToolRunner:
    return ToolRunner(Workspace(root))


def refused(tools: ToolRunner, diff: str) -> ToolFailure:
    with pytest.raises(ToolFailure) as caught:
        tools.run("apply_patch", {"diff": diff})
    return caught.value


LOAD_HUNK = """\
     def load(self, name):
+        print('load', name)
         path = os.path.join(self.root, name)
         with open(path) as file:
"""


@pytest.mark.parametrize(
    "diff",
    [
        f"--- a/src/app.py\n+++ b/src/app.py\n@@ -8,3 +8,4 @@\n{LOAD_HUNK}",
        f"--- a/src/app.py\n+++ b/src/app.py\n@@ -40,3 +40,4 @@\n{LOAD_HUNK}",
        f"--- a/src/app.py\n+++ b/src/app.py\n@@ -8,9 +8,2 @@\n{LOAD_HUNK}",
        f"--- a/src/app.py\n+++ b/src/app.py\n@@\n{LOAD_HUNK}",
        f"--- src/app.py\n+++ src/app.py\n@@ ... @@\n{LOAD_HUNK}",
        f"Sure! Here is the diff:\n\n```diff\n--- a/src/app.py\n+++ b/src/app.py\n@@ @@\n{LOAD_HUNK}```\n"
        "- This adds a print.\n",
        "--- a/src/app.py\n+++ b/src/app.py\n@@\n"
        + "".join(f"{line[0]}{line[3:]}\n" for line in LOAD_HUNK.splitlines()),
        "--- a/src/app.py\n+++ b/src/app.py\n@@\n"
        + "".join(
            f"{line[0]}{line[3:]}\n" if line.startswith(" ") else f"{line}\n"
            for line in LOAD_HUNK.splitlines()
        ),
        "--- a/src/app.py\n+++ b/src/app.py\n@@\n"
        + "".join(
            line + ("   \n" if line.startswith(" ") else "\n") for line in LOAD_HUNK.splitlines()
        ),
        "*** Begin Patch\n*** Update File: src/app.py\n@@ class Store:\n"
        f"{LOAD_HUNK}*** End Patch\n",
    ],
    ids=[
        "right",
        "numbers-off",
        "counts-off",
        "bare",
        "dots-no-prefixes",
        "fenced-prose",
        "dedented-by-two",
        "only-context-dedented",
        "trailing-spaces",
        "v4a",
    ],
)
def test_apply_patch_applies_model_style_diffs_exactly_as_intended(
    tools: ToolRunner, root: Path, diff: str
) -> None:
    assert tools.run("apply_patch", {"diff": diff}) == {"files": ["src/app.py"]}
    assert (root / "src" / "app.py").read_text() == LOGGED


def test_apply_patch_keeps_crlf_endings_when_the_diff_has_lf(tools: ToolRunner, root: Path) -> None:
    (root / "src" / "app.py").write_bytes(APP_PY.replace("\n", "\r\n").encode())
    tools.run("apply_patch", {"diff": f"--- a/src/app.py\n+++ b/src/app.py\n@@\n{LOAD_HUNK}"})
    assert (root / "src" / "app.py").read_bytes() == LOGGED.replace("\n", "\r\n").encode()


def test_apply_patch_writes_tabs_where_the_file_has_tabs(tools: ToolRunner, root: Path) -> None:
    tabbed = APP_PY.replace("        ", "\t\t").replace("    ", "\t")
    (root / "src" / "app.py").write_text(tabbed)
    tools.run("apply_patch", {"diff": f"--- a/src/app.py\n+++ b/src/app.py\n@@\n{LOAD_HUNK}"})
    assert (root / "src" / "app.py").read_text() == tabbed.replace(
        "\tdef load(self, name):\n", "\tdef load(self, name):\n\t\tprint('load', name)\n"
    )


def test_apply_patch_applies_hunks_given_out_of_order(tools: ToolRunner, root: Path) -> None:
    diff = """\
--- a/src/app.py
+++ b/src/app.py
@@ -14,3 +14,4 @@
         path = os.path.join(self.root, name)
         with open(path, "w") as file:
             file.write(text)
+        return len(text)
@@ -1,3 +1,4 @@
 import os
+import sys
"""
    diff += " \n \n"
    tools.run("apply_patch", {"diff": diff})
    text = (root / "src" / "app.py").read_text()
    assert text.startswith("import os\nimport sys\n\n\nclass Store:")
    assert text.endswith("            file.write(text)\n        return len(text)\n")


def test_apply_patch_v4a_adds_moves_and_deletes_files(tools: ToolRunner, root: Path) -> None:
    (root / "old.txt").write_text("anything at all\n")
    diff = """\
*** Begin Patch
*** Add File: docs/notes.md
+# Notes
+
+First.
*** Update File: src/app.py
*** Move to: src/store.py
@@ def save(self, name, text):
-        with open(path, "w") as file:
+        with open(path, "w", encoding="utf-8") as file:
*** Delete File: old.txt
*** End Patch
"""
    files = tools.run("apply_patch", {"diff": diff})["files"]
    assert sorted(files) == ["docs/notes.md", "old.txt", "src/app.py", "src/store.py"]
    assert (root / "docs" / "notes.md").read_text() == "# Notes\n\nFirst.\n"
    assert not (root / "src" / "app.py").exists() and not (root / "old.txt").exists()
    assert 'open(path, "w", encoding="utf-8")' in (root / "src" / "store.py").read_text()


def test_apply_patch_v4a_anchor_tells_two_identical_places_apart(
    tools: ToolRunner, root: Path
) -> None:
    diff = """\
*** Begin Patch
*** Update File: src/app.py
@@ def save(self, name, text):
-        path = os.path.join(self.root, name)
+        path = os.path.join(self.root, "saved", name)
*** End Patch
"""
    tools.run("apply_patch", {"diff": diff})
    text = (root / "src" / "app.py").read_text()
    assert text.count('os.path.join(self.root, "saved", name)') == 1
    assert text.index('"saved"') > text.index("def save")


def test_apply_patch_v4a_appends_at_the_end_of_file(tools: ToolRunner, root: Path) -> None:
    diff = (
        "*** Begin Patch\n*** Update File: src/app.py\n@@\n+# end\n*** End of File\n*** End Patch"
    )
    tools.run("apply_patch", {"diff": diff})
    assert (root / "src" / "app.py").read_text() == APP_PY + "# end\n"


# ---- refusals: never a guess ----------------------------------------------------------------


def test_apply_patch_refuses_a_hunk_that_fits_two_places_and_names_them(
    tools: ToolRunner, root: Path
) -> None:
    diff = "--- a/src/app.py\n+++ b/src/app.py\n@@\n-        path = os.path.join(self.root, name)\n+        path = name\n"
    failure = refused(tools, diff)
    assert failure.code is ToolCode.PATCH_FAILED
    assert "match 2 places" in failure.message and "lines 9, 14" in failure.message
    assert failure.details == {
        "conflicts": [
            {
                "kind": "ambiguous",
                "path": "src/app.py",
                "summary": failure.details["conflicts"][0]["summary"],
                "hunk": 1,
                "diff_line": 3,
                "candidates": [9, 14],
            }
        ]
    }
    assert (root / "src" / "app.py").read_text() == APP_PY


def test_apply_patch_refuses_a_stale_file_and_shows_the_line_that_changed(
    tools: ToolRunner, root: Path
) -> None:
    (root / "src" / "app.py").write_text(APP_PY.replace("path) as file:", "path, 'rb') as file:"))
    before = (root / "src" / "app.py").read_text()
    diff = f"--- a/src/app.py\n+++ b/src/app.py\n@@ -8,3 +8,4 @@ class Store:\n{LOAD_HUNK}"
    failure = refused(tools, diff)
    assert failure.details is not None
    [conflict] = failure.details["conflicts"]
    assert conflict["kind"] == "context_mismatch"
    assert conflict["line"] == 10
    assert conflict["expected"] == "        with open(path) as file:"
    assert conflict["actual"] == "        with open(path, 'rb') as file:"
    assert {"line": 10, "text": "        with open(path, 'rb') as file:"} in conflict["nearest"]
    assert "src/app.py: hunk #1 (diff line 3)" in failure.message
    assert "first difference at line 10" in failure.message
    assert "10 |         with open(path, 'rb') as file:" in failure.message
    assert (root / "src" / "app.py").read_text() == before


def test_apply_patch_refuses_indentation_it_cannot_map_onto_the_file(tools: ToolRunner) -> None:
    mixed = "--- a/src/app.py\n+++ b/src/app.py\n@@\n def load(self, name):\n+    print(name)\n       path = os.path.join(self.root, name)\n"
    failure = refused(tools, mixed)
    assert failure.details is not None
    assert failure.details["conflicts"][0]["kind"] == "indentation"


def test_apply_patch_refuses_a_hunk_without_context_in_a_non_empty_file(tools: ToolRunner) -> None:
    failure = refused(tools, "--- a/src/app.py\n+++ b/src/app.py\n@@ -3,0 +4,1 @@\n+x = 1\n")
    assert failure.details is not None
    assert failure.details["conflicts"][0]["kind"] == "no_context"


def test_apply_patch_reports_every_refused_hunk_at_once(tools: ToolRunner, root: Path) -> None:
    diff = "--- a/src/app.py\n+++ b/src/app.py\n@@\n-no such line\n+x\n@@\n-nor this one\n+y\n"
    failure = refused(tools, diff)
    assert failure.details is not None
    assert [c["hunk"] for c in failure.details["conflicts"]] == [1, 2]
    assert (root / "src" / "app.py").read_text() == APP_PY


def test_tool_result_carries_the_conflict_details(tools: ToolRunner) -> None:
    call = ToolCall(
        session_id="s",
        seq=1,
        call_id="c1",
        tool="apply_patch",
        arguments={"diff": "--- a/src/app.py\n+++ b/src/app.py\n@@\n-no such line\n+x\n"},
    )
    result = tools.answer(call)
    assert result.ok is False and result.error is not None
    assert result.error.code == "patch_failed"
    assert result.error.details is not None
    assert result.error.details["conflicts"][0]["path"] == "src/app.py"


# ---- the pure entry point -------------------------------------------------------------------


def test_plan_patch_returns_every_file_the_diff_changes_without_writing() -> None:
    files = {"src/app.py": APP_PY, "gone.txt": "bye\n"}
    diff = (
        f"--- a/src/app.py\n+++ b/src/app.py\n@@\n{LOAD_HUNK}"
        "--- /dev/null\n+++ b/new.txt\n@@ -0,0 +1 @@\n+hello\n"
        "--- a/gone.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n"
    )
    planned = plan_patch(diff, files.get)
    assert planned == [
        PlannedFile("src/app.py", LOGGED, created=False),
        PlannedFile("new.txt", "hello\n", created=True),
        PlannedFile("gone.txt", None, created=False),
    ]
    assert planned[2].deleted
    assert files == {"src/app.py": APP_PY, "gone.txt": "bye\n"}


def test_plan_patch_raises_a_structured_conflict() -> None:
    with pytest.raises(PatchConflict) as caught:
        plan_patch("--- a/x\n+++ b/x\n@@\n-a\n+b\n", {"x": "c\n"}.get)
    assert caught.value.conflicts[0].line == 1
    assert caught.value.details == {"conflicts": [caught.value.conflicts[0].as_json()]}


def test_apply_patch_uses_git_function_context_to_tell_two_places_apart(
    tools: ToolRunner, root: Path
) -> None:
    diff = (
        "--- a/src/app.py\n+++ b/src/app.py\n@@ -60,1 +60,1 @@ def save(self, name, text):\n"
        "-        path = os.path.join(self.root, name)\n+        path = name\n"
    )
    tools.run("apply_patch", {"diff": diff})
    before, _, after = APP_PY.rpartition("        path = os.path.join(self.root, name)\n")
    assert (root / "src" / "app.py").read_text() == before + "        path = name\n" + after


def test_a_reindented_line_added_after_a_comment_ending_in_a_colon_takes_the_files_indentation(
    tools: ToolRunner, root: Path
) -> None:
    (root / "notes.py").write_text(
        "def setup():\n    # the values:\n    #   first, second\n    return 1\n"
    )
    # the model wrote the hunk four columns deeper than the file; a comment opens no block
    diff = (
        "--- a/notes.py\n+++ b/notes.py\n@@\n"
        "         # the values:\n+        trace('here')\n         #   first, second\n"
    )
    tools.run("apply_patch", {"diff": diff})
    assert (root / "notes.py").read_text() == (
        "def setup():\n    # the values:\n    trace('here')\n    #   first, second\n    return 1\n"
    )
