"""git.diff runs git in the workspace, confined to it, and says clearly when it cannot."""

from __future__ import annotations

from pathlib import Path

import pytest

from ide_client.errors import ToolCode, ToolFailure
from ide_client.git import run_git
from ide_client.sample import AUTH_JS, create_sample_workspace
from ide_client.tools import ToolRunner
from ide_client.workspace import Workspace


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return create_sample_workspace(tmp_path / "ws")


@pytest.fixture
def tools(root: Path) -> ToolRunner:
    return ToolRunner(Workspace(root))


def diff(tools: ToolRunner, **arguments: object) -> str:
    output: str = tools.run("git.diff", dict(arguments))["diff"]
    return output


def test_sample_workspace_is_one_clean_commit(root: Path) -> None:
    assert run_git(root, "status", "--porcelain") == ""
    assert run_git(root, "log", "--format=%s") == "Sample app\n"
    assert (root / "src" / "auth.js").read_text() == AUTH_JS


def test_git_diff_is_empty_when_nothing_changed(tools: ToolRunner) -> None:
    assert diff(tools) == ""


def test_git_diff_shows_unstaged_changes_with_a_b_prefixes(tools: ToolRunner, root: Path) -> None:
    (root / "src" / "auth.js").write_text(AUTH_JS.replace("return null;", "return false;"))
    (root / "README.md").write_text("changed\n")
    shown = diff(tools)
    assert "diff --git a/src/auth.js b/src/auth.js" in shown
    assert "-    return null;\n+    return false;\n" in shown
    assert "README.md" in shown
    assert diff(tools, path="src/auth.js").startswith("diff --git a/src/auth.js")
    assert "README.md" not in diff(tools, path="src/auth.js")


def test_git_diff_shows_only_staged_changes_when_staged(tools: ToolRunner, root: Path) -> None:
    (root / "src" / "auth.js").write_text(AUTH_JS + "// staged\n")
    run_git(root, "add", "src/auth.js")
    (root / "README.md").write_text("unstaged\n")
    staged = diff(tools, staged=True)
    assert "+// staged" in staged
    assert "README.md" not in staged
    assert "+// staged" not in diff(tools)


def test_git_diff_takes_paths_literally(tools: ToolRunner, root: Path) -> None:
    (root / "src" / "auth.js").write_text(AUTH_JS + "// change\n")
    assert diff(tools, path="src/*.js") == ""


def test_git_diff_reports_not_a_git_repo(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(ToolFailure) as caught:
        ToolRunner(Workspace(plain)).run("git.diff", {})
    assert caught.value.code is ToolCode.NOT_A_GIT_REPO


def test_git_diff_refuses_a_path_outside_the_workspace(tools: ToolRunner) -> None:
    for path in ("../", "/etc"):
        with pytest.raises(ToolFailure) as caught:
            tools.run("git.diff", {"path": path})
        assert caught.value.code is ToolCode.OUTSIDE_WORKSPACE


def test_git_diff_shows_only_the_workspace_when_it_is_a_subdirectory_of_a_repo(
    root: Path,
) -> None:
    (root / "src" / "auth.js").write_text(AUTH_JS + "// inside\n")
    (root / "README.md").write_text("outside the workspace\n")
    shown = diff(ToolRunner(Workspace(root / "src")))
    assert shown.startswith("diff --git a/auth.js b/auth.js")
    assert "README.md" not in shown


def test_git_diff_ignores_repository_variables_of_the_environment(
    tools: ToolRunner, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = create_sample_workspace(tmp_path / "other")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    (root / "README.md").write_text("mine\n")
    assert "+mine" in diff(tools)


def test_git_diff_reports_timeout_when_git_hangs(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "git").write_text("#!/bin/sh\nexec sleep 30\n")
    (fake_bin / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}:/usr/bin:/bin")
    tools = ToolRunner(Workspace(root), git_timeout=0.2)
    with pytest.raises(ToolFailure) as caught:
        tools.run("git.diff", {})
    assert caught.value.code is ToolCode.TIMEOUT


def test_git_diff_refuses_a_diff_over_the_size_limit(root: Path) -> None:
    (root / "src" / "auth.js").write_text(AUTH_JS * 20)
    with pytest.raises(ToolFailure) as caught:
        ToolRunner(Workspace(root, max_file_bytes=2000)).run("git.diff", {})
    assert caught.value.code is ToolCode.TOO_LARGE
