"""apply_patch reads git-style unified diffs and applies them all or nothing, inside the workspace."""

from __future__ import annotations

import contextlib
import difflib
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ide_client import workspace as workspace_module
from ide_client.errors import ToolCode, ToolFailure
from ide_client.git import run_git
from ide_client.patch import PatchError, apply_hunks, parse_patch
from ide_client.sample import AUTH_JS, README_MD, create_sample_workspace
from ide_client.tools import ToolRunner
from ide_client.workspace import Workspace

MODIFY_AUTH = """\
diff --git a/src/auth.js b/src/auth.js
index 1111111..2222222 100644
--- a/src/auth.js
+++ b/src/auth.js
@@ -10,2 +10,3 @@ function hashPassword(password, salt) {
 function login(users, username, password) {
+  console.log("login", username);
   const user = users.get(username);
@@ -21,2 +22,3 @@ function logout(token) {
 function logout(token) {
+  console.log("logout");
   sessions.delete(token);
"""

CREATE_UTIL = """\
diff --git a/src/util.js b/src/util.js
new file mode 100644
index 0000000..3333333
--- /dev/null
+++ b/src/util.js
@@ -0,0 +1,2 @@
+// util
+module.exports = {};
"""

DELETE_README = f"""\
diff --git a/README.md b/README.md
deleted file mode 100644
index 4444444..0000000
--- a/README.md
+++ /dev/null
@@ -1,3 +0,0 @@
{"".join("-" + line for line in README_MD.splitlines(keepends=True))}"""

RENAME_README = """\
diff --git a/README.md b/docs/README.md
similarity index 100%
rename from README.md
rename to docs/README.md
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return create_sample_workspace(tmp_path / "ws")


@pytest.fixture
def tools(root: Path) -> ToolRunner:
    return ToolRunner(Workspace(root))


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "victim.txt").write_text("outside\n")
    return directory


def apply(tools: ToolRunner, diff: str) -> list[str]:
    output = tools.run("apply_patch", {"diff": diff})
    files: list[str] = output["files"]
    return files


def refused(tools: ToolRunner, diff: str) -> ToolFailure:
    with pytest.raises(ToolFailure) as caught:
        tools.run("apply_patch", {"diff": diff})
    return caught.value


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file of the workspace outside .git, to prove that nothing changed."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and ".git" not in path.relative_to(root).parts
    }


# ---- the diff shapes git writes -------------------------------------------------------------


def test_apply_patch_modifies_a_file_with_several_hunks(tools: ToolRunner, root: Path) -> None:
    assert apply(tools, MODIFY_AUTH) == ["src/auth.js"]
    content = (root / "src" / "auth.js").read_text()
    assert 'function login(users, username, password) {\n  console.log("login"' in content
    assert 'function logout(token) {\n  console.log("logout");\n  sessions' in content
    assert len(content.splitlines()) == len(AUTH_JS.splitlines()) + 2


def test_apply_patch_creates_deletes_and_renames_files_in_one_diff(
    tools: ToolRunner, root: Path
) -> None:
    files = apply(tools, CREATE_UTIL + DELETE_README)
    assert files == ["src/util.js", "README.md"]
    assert (root / "src" / "util.js").read_text() == "// util\nmodule.exports = {};\n"
    assert not (root / "README.md").exists()


def test_apply_patch_renames_a_file_without_hunks(tools: ToolRunner, root: Path) -> None:
    assert apply(tools, RENAME_README) == ["README.md", "docs/README.md"]
    assert not (root / "README.md").exists()
    assert (root / "docs" / "README.md").read_text() == README_MD


def test_apply_patch_renames_and_changes_a_file(tools: ToolRunner, root: Path) -> None:
    diff = """\
diff --git a/src/auth.js b/lib/auth.js
similarity index 95%
rename from src/auth.js
rename to lib/auth.js
index 1111111..2222222 100644
--- a/src/auth.js
+++ b/lib/auth.js
@@ -1,2 +1,2 @@
-// Session authentication for the sample app.
+// Session authentication.
 const crypto = require("crypto");
"""
    apply(tools, diff)
    assert not (root / "src" / "auth.js").exists()
    assert (root / "lib" / "auth.js").read_text() == AUTH_JS.replace(" for the sample app", "")


def test_apply_patch_handles_no_newline_at_end_of_file(tools: ToolRunner, root: Path) -> None:
    (root / "plain.txt").write_text("one\ntwo")
    add_newline = """\
--- a/plain.txt
+++ b/plain.txt
@@ -1,2 +1,2 @@
 one
-two
\\ No newline at end of file
+two
"""
    apply(tools, add_newline)
    assert (root / "plain.txt").read_text() == "one\ntwo\n"
    drop_newline = """\
--- a/plain.txt
+++ b/plain.txt
@@ -2 +2 @@
-two
+three
\\ No newline at end of file
"""
    apply(tools, drop_newline)
    assert (root / "plain.txt").read_text() == "one\nthree"


def test_apply_patch_keeps_carriage_returns_of_crlf_files(tools: ToolRunner, root: Path) -> None:
    (root / "win.txt").write_bytes(b"a\r\nb\r\n")
    apply(tools, "--- a/win.txt\n+++ b/win.txt\n@@ -1,2 +1,2 @@\n a\r\n-b\r\n+c\r\n")
    assert (root / "win.txt").read_bytes() == b"a\r\nc\r\n"


def test_apply_patch_finds_a_hunk_whose_line_numbers_are_off(tools: ToolRunner, root: Path) -> None:
    shifted = MODIFY_AUTH.replace("@@ -10,2 +10,3 @@", "@@ -4,2 +4,3 @@")
    apply(tools, shifted)
    assert 'console.log("login", username);' in (root / "src" / "auth.js").read_text()


def test_apply_patch_sets_the_execute_bit_from_the_mode_line(tools: ToolRunner, root: Path) -> None:
    diff = """\
diff --git a/run.sh b/run.sh
new file mode 100755
--- /dev/null
+++ b/run.sh
@@ -0,0 +1 @@
+#!/bin/sh
"""
    apply(tools, diff)
    assert os.access(root / "run.sh", os.X_OK)
    apply(tools, "diff --git a/run.sh b/run.sh\nold mode 100755\nnew mode 100644\n")
    assert not stat.S_IMODE((root / "run.sh").stat().st_mode) & 0o111


def test_apply_patch_reads_quoted_non_ascii_paths(tools: ToolRunner, root: Path) -> None:
    diff = """\
diff --git "a/caf\\303\\251.txt" "b/caf\\303\\251.txt"
new file mode 100644
--- /dev/null
+++ "b/caf\\303\\251.txt"
@@ -0,0 +1 @@
+latte
"""
    assert apply(tools, diff) == ["café.txt"]
    assert (root / "café.txt").read_text() == "latte\n"


# ---- git diff round trip --------------------------------------------------------------------


def test_apply_patch_reproduces_a_change_from_its_git_diff(tools: ToolRunner, root: Path) -> None:
    auth = root / "src" / "auth.js"
    auth.write_text(AUTH_JS.replace("return null;", "throw new Error('denied');") + "// end")
    (root / "src" / "new.js").write_text("export const x = 1;\n")
    (root / "README.md").rename(root / "GUIDE.md")
    run_git(root, "add", "--all")
    expected = snapshot(root)
    diff = tools.run("git.diff", {"staged": True})["diff"]
    assert "rename from README.md" in diff
    assert "\\ No newline at end of file" in diff
    run_git(root, "reset", "--quiet", "--hard")
    run_git(root, "clean", "--quiet", "-d", "--force")
    assert snapshot(root) != expected

    files = apply(tools, diff)

    assert snapshot(root) == expected
    assert sorted(files) == ["GUIDE.md", "README.md", "src/auth.js", "src/new.js"]


def test_apply_patch_refuses_the_same_diff_twice(tools: ToolRunner, root: Path) -> None:
    apply(tools, MODIFY_AUTH)
    before = snapshot(root)
    assert refused(tools, MODIFY_AUTH).code is ToolCode.PATCH_FAILED
    assert snapshot(root) == before


# ---- all or nothing -------------------------------------------------------------------------


def test_apply_patch_leaves_every_file_untouched_when_a_later_hunk_fails(
    tools: ToolRunner, root: Path
) -> None:
    before = snapshot(root)
    broken = MODIFY_AUTH.replace("   sessions.delete(token);", "   sessions.clear();")
    failure = refused(tools, CREATE_UTIL + broken)
    assert failure.code is ToolCode.PATCH_FAILED
    assert "hunk #2" in failure.message and "sessions.clear()" in failure.message
    assert snapshot(root) == before


def test_apply_patch_leaves_every_file_untouched_when_a_later_path_is_outside(
    tools: ToolRunner, root: Path, outside: Path
) -> None:
    before = snapshot(root)
    escape = CREATE_UTIL.replace("src/util.js", "../outside/util.js")
    failure = refused(tools, MODIFY_AUTH + escape)
    assert failure.code is ToolCode.OUTSIDE_WORKSPACE
    assert snapshot(root) == before
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"]


def test_apply_patch_leaves_every_file_untouched_when_creating_an_existing_file(
    tools: ToolRunner, root: Path
) -> None:
    before = snapshot(root)
    failure = refused(tools, MODIFY_AUTH + CREATE_UTIL.replace("src/util.js", "README.md"))
    assert failure.code is ToolCode.PATCH_FAILED
    assert "already exists" in failure.message
    assert snapshot(root) == before


def test_apply_patch_rolls_back_placed_files_when_a_rename_fails_midway(
    tools: ToolRunner, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(root)
    real_rename = os.rename

    def rename_failing_for_util(src: Any, dst: Any, **kwargs: Any) -> None:
        if dst == "util.js":
            raise OSError(28, "No space left on device")
        real_rename(src, dst, **kwargs)

    monkeypatch.setattr(workspace_module.os, "rename", rename_failing_for_util)
    with pytest.raises(OSError):
        tools.run("apply_patch", {"diff": MODIFY_AUTH + DELETE_README + CREATE_UTIL})
    monkeypatch.undo()
    assert snapshot(root) == before
    leftovers = [p.name for p in root.rglob(".*") if p.name.endswith((".tmp", ".orig"))]
    assert leftovers == []


def test_apply_patch_refuses_a_file_that_changed_after_it_was_read(
    tools: ToolRunner, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = workspace_module._Transaction.prepare

    def edit_then_prepare(self: Any, change: Any) -> None:
        with (root / "src" / "auth.js").open("a") as file:
            file.write("// edited by the user meanwhile\n")
        original(self, change)

    monkeypatch.setattr(workspace_module._Transaction, "prepare", edit_then_prepare)
    failure = refused(tools, MODIFY_AUTH)
    assert failure.code is ToolCode.PATCH_FAILED
    assert "changed on disk" in failure.message
    assert "console.log" not in (root / "src" / "auth.js").read_text()


# ---- escapes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "diff",
    [
        CREATE_UTIL.replace("src/util.js", "../outside/created.txt"),
        CREATE_UTIL.replace("b/src/util.js", "b//tmp/agent-escape.txt"),
        RENAME_README.replace("docs/README.md", "../outside/README.md"),
        "diff --git a/../outside/victim.txt b/stolen.txt\nsimilarity index 100%\n"
        "rename from ../outside/victim.txt\nrename to stolen.txt\n",
        "diff --git a/../outside/victim.txt b/../outside/victim.txt\ndeleted file mode 100644\n"
        "--- a/../outside/victim.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-outside\n",
        "--- a/../outside/victim.txt\n+++ b/../outside/victim.txt\n@@ -1 +1 @@\n-outside\n+pwned\n",
    ],
    ids=["create", "create-absolute", "rename-to", "rename-from", "delete", "modify"],
)
def test_apply_patch_refuses_diffs_that_touch_files_outside(
    tools: ToolRunner, root: Path, outside: Path, diff: str
) -> None:
    before = snapshot(root)
    assert refused(tools, diff).code is ToolCode.OUTSIDE_WORKSPACE
    assert snapshot(root) == before
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"]
    assert (outside / "victim.txt").read_text() == "outside\n"
    assert not Path("/tmp/agent-escape.txt").exists()


def test_apply_patch_refuses_diffs_through_a_symlink_to_outside(
    tools: ToolRunner, root: Path, outside: Path
) -> None:
    (root / "out").symlink_to(outside)
    diff = "--- a/out/victim.txt\n+++ b/out/victim.txt\n@@ -1 +1 @@\n-outside\n+pwned\n"
    assert refused(tools, diff).code is ToolCode.OUTSIDE_WORKSPACE
    assert (outside / "victim.txt").read_text() == "outside\n"


@pytest.mark.parametrize(
    "diff",
    [
        "--- a/.git/config\n+++ b/.git/config\n@@ -1 +1 @@\n-[core]\n+[core]\n",
        CREATE_UTIL.replace("src/util.js", ".git/hooks/post-checkout"),
        RENAME_README.replace("docs/README.md", ".git/README.md"),
        "diff --git a/.git/HEAD b/.git/HEAD\ndeleted file mode 100644\n",
        CREATE_UTIL.replace("src/util.js", ".agent-service/config.json"),
    ],
    ids=["modify-git", "create-git-hook", "rename-into-git", "delete-git", "agent-config"],
)
def test_apply_patch_refuses_diffs_that_touch_git_or_agent_config(
    tools: ToolRunner, root: Path, diff: str
) -> None:
    before = snapshot(root)
    git_before = {p: p.read_bytes() for p in (root / ".git").rglob("*") if p.is_file()}
    assert refused(tools, diff).code is ToolCode.PROTECTED_PATH
    assert snapshot(root) == before
    assert {p: p.read_bytes() for p in (root / ".git").rglob("*") if p.is_file()} == git_before
    assert not (root / ".agent-service").exists()


# ---- malformed diffs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("diff", "complaint"),
    [
        ("", "no file changes"),
        ("please add logging", "no file changes"),
        ("@@ -1 +1 @@\n-a\n+b\n", "without a file header"),
        ("--- a/x\n+++ b/x\n@@ bogus @@\n", "the hunk has no lines"),
        ("--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n```\n", "the hunk has no lines"),
        ("diff --git a/x b/x\nBinary files a/x and b/x differ\n", "binary"),
        ("--- /dev/null\n+++ /dev/null\n", "/dev/null to /dev/null"),
    ],
)
def test_parse_patch_explains_what_is_wrong(diff: str, complaint: str) -> None:
    with pytest.raises(PatchError) as caught:
        parse_patch(diff)
    assert caught.value.code is ToolCode.PATCH_FAILED
    assert complaint in caught.value.message


lines = st.lists(st.sampled_from(["a\n", "b\n", "c\n", "\n", "d e\n", "é\n"]), max_size=12)


@settings(max_examples=200, deadline=None)
@given(old=lines, new=lines)
def test_apply_hunks_turns_old_into_new_for_any_difflib_diff(
    old: list[str], new: list[str]
) -> None:
    diff = "".join(difflib.unified_diff(old, new, "a/f.txt", "b/f.txt", n=2))
    patches = parse_patch(diff) if diff else []
    result = apply_hunks("".join(old), patches[0].hunks, "f.txt") if patches else "".join(old)
    assert result == "".join(new)


@settings(max_examples=300, deadline=None)
@given(diff=st.text(alphabet="-+ @\\\n0123456789,abdgit/", max_size=200))
def test_parse_patch_only_ever_raises_patch_failed_for_garbage(diff: str) -> None:
    try:
        patches = parse_patch(diff)
    except PatchError:
        return
    for patch in patches:
        with contextlib.suppress(PatchError):
            apply_hunks("a\nb\n", patch.hunks, "x")
