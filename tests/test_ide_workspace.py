"""The reference IDE's read_file and write_file stay inside the workspace, whatever the path says."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ide_client import workspace as workspace_module
from ide_client.errors import ToolCode, ToolFailure
from ide_client.tools import ToolRunner
from ide_client.workspace import Target, Workspace

SECRET = "outside secret\n"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the workspace, holding a file no tool may read or change."""
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "secret.txt").write_text(SECRET)
    (directory / "auth.js").write_text(SECRET)
    return directory


@pytest.fixture
def root(tmp_path: Path) -> Path:
    directory = tmp_path / "ws"
    (directory / "src").mkdir(parents=True)
    (directory / "src" / "auth.js").write_text("function login() {}\n")
    (directory / "README.md").write_text("# readme\n")
    (directory / ".git").mkdir()
    (directory / ".git" / "config").write_text("[core]\n")
    return directory


@pytest.fixture
def tools(root: Path) -> ToolRunner:
    return ToolRunner(Workspace(root, max_file_bytes=1000))


def refused(tools: ToolRunner, tool: str, **arguments: Any) -> ToolFailure:
    with pytest.raises(ToolFailure) as caught:
        tools.run(tool, arguments)
    return caught.value


def untouched(outside: Path) -> bool:
    return sorted(p.name for p in outside.iterdir()) == ["auth.js", "secret.txt"] and all(
        p.read_text() == SECRET for p in outside.iterdir()
    )


def swap_after_check(monkeypatch: pytest.MonkeyPatch, swap: Callable[[], None]) -> None:
    """Run `swap` between the path check (`resolve`) and the open: the race, made deterministic."""
    original = Workspace.resolve

    def resolve_then_swap(self: Workspace, path: str, *, write: bool = False) -> Target:
        target = original(self, path, write=write)
        swap()
        return target

    monkeypatch.setattr(Workspace, "resolve", resolve_then_swap)


# ---- read_file ------------------------------------------------------------------------------


def test_read_file_returns_content_when_path_is_inside(tools: ToolRunner) -> None:
    assert tools.run("read_file", {"path": "src/auth.js"}) == {"content": "function login() {}\n"}


def test_read_file_allows_dotdot_when_it_stays_inside(tools: ToolRunner) -> None:
    assert tools.run("read_file", {"path": "src/../README.md"}) == {"content": "# readme\n"}


@pytest.mark.parametrize("path", ["../outside/secret.txt", "src/../../outside/secret.txt", ".."])
def test_read_file_refuses_dotdot_when_it_leaves_the_workspace(
    tools: ToolRunner, path: str
) -> None:
    failure = refused(tools, "read_file", path=path)
    assert failure.code is ToolCode.OUTSIDE_WORKSPACE


def test_read_file_refuses_absolute_path_even_when_inside(tools: ToolRunner, root: Path) -> None:
    for path in (str(root / "README.md"), "/etc/passwd"):
        failure = refused(tools, "read_file", path=path)
        assert failure.code is ToolCode.OUTSIDE_WORKSPACE
        assert "absolute" in failure.message


def test_read_file_refuses_symlink_when_it_points_outside(
    tools: ToolRunner, root: Path, outside: Path
) -> None:
    (root / "leak.txt").symlink_to(outside / "secret.txt")
    (root / "src" / "up").symlink_to(outside)
    for path in ("leak.txt", "src/up/secret.txt"):
        failure = refused(tools, "read_file", path=path)
        assert failure.code is ToolCode.OUTSIDE_WORKSPACE


def test_read_file_follows_symlink_when_it_points_inside(tools: ToolRunner, root: Path) -> None:
    (root / "link.md").symlink_to("README.md")
    assert tools.run("read_file", {"path": "link.md"}) == {"content": "# readme\n"}


def test_read_file_refuses_file_swapped_for_symlink_after_the_check(
    tools: ToolRunner, root: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def swap() -> None:
        (root / "src" / "auth.js").unlink()
        (root / "src" / "auth.js").symlink_to(outside / "secret.txt")

    swap_after_check(monkeypatch, swap)
    failure = refused(tools, "read_file", path="src/auth.js")
    assert failure.code is ToolCode.OUTSIDE_WORKSPACE
    assert "became a symbolic link after the path was checked" in failure.message
    assert SECRET.strip() not in failure.message


def test_read_file_refuses_directory_swapped_for_symlink_after_the_check(
    tools: ToolRunner, root: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def swap() -> None:
        (root / "src").rename(root / "src.old")
        (root / "src").symlink_to(outside)

    swap_after_check(monkeypatch, swap)
    failure = refused(tools, "read_file", path="src/auth.js")
    assert failure.code is ToolCode.OUTSIDE_WORKSPACE
    assert "became a symbolic link after the path was checked" in failure.message


def test_read_file_reports_not_found_when_file_is_missing(tools: ToolRunner) -> None:
    for path in ("missing.txt", "nowhere/missing.txt", "README.md/inside"):
        assert refused(tools, "read_file", path=path).code is ToolCode.NOT_FOUND


def test_read_file_refuses_non_regular_files_without_blocking(
    tools: ToolRunner, root: Path
) -> None:
    os.mkfifo(root / "pipe")
    for path in ("src", ".", "pipe"):
        assert refused(tools, "read_file", path=path).code is ToolCode.NOT_A_FILE


def test_read_file_refuses_binary_content(tools: ToolRunner, root: Path) -> None:
    (root / "image.bin").write_bytes(b"\x89PNG\xff\xfe")
    assert refused(tools, "read_file", path="image.bin").code is ToolCode.NOT_TEXT


def test_read_file_refuses_file_over_the_size_limit(tools: ToolRunner, root: Path) -> None:
    (root / "big.txt").write_text("x" * 1001)
    (root / "fits.txt").write_text("x" * 1000)
    assert refused(tools, "read_file", path="big.txt").code is ToolCode.TOO_LARGE
    assert tools.run("read_file", {"path": "fits.txt"}) == {"content": "x" * 1000}


# ---- write_file -----------------------------------------------------------------------------


def test_write_file_replaces_content_and_reports_bytes(tools: ToolRunner, root: Path) -> None:
    output = tools.run("write_file", {"path": "src/auth.js", "content": "é\n"})
    assert output == {"bytes_written": 3}
    assert (root / "src" / "auth.js").read_text() == "é\n"
    assert sorted(p.name for p in (root / "src").iterdir()) == ["auth.js"]


def test_write_file_creates_parent_directories_when_missing(tools: ToolRunner, root: Path) -> None:
    tools.run("write_file", {"path": "lib/util/log.js", "content": "log\n"})
    assert (root / "lib" / "util" / "log.js").read_text() == "log\n"


def test_write_file_keeps_permission_bits_when_replacing(tools: ToolRunner, root: Path) -> None:
    script = root / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o750)
    tools.run("write_file", {"path": "run.sh", "content": "#!/bin/sh\necho hi\n"})
    assert stat.S_IMODE(script.stat().st_mode) == 0o750


@pytest.mark.parametrize(
    "path", ["../outside/new.txt", "../outside/secret.txt", "/tmp/agent-escape.txt"]
)
def test_write_file_refuses_paths_outside(tools: ToolRunner, outside: Path, path: str) -> None:
    assert refused(tools, "write_file", path=path, content="x").code is ToolCode.OUTSIDE_WORKSPACE
    assert untouched(outside)
    assert not Path("/tmp/agent-escape.txt").exists()


def test_write_file_refuses_symlink_when_it_points_outside(
    tools: ToolRunner, root: Path, outside: Path
) -> None:
    (root / "leak.txt").symlink_to(outside / "secret.txt")
    (root / "out").symlink_to(outside)
    for path in ("leak.txt", "out/new.txt", "out/secret.txt"):
        failure = refused(tools, "write_file", path=path, content="pwned")
        assert failure.code is ToolCode.OUTSIDE_WORKSPACE
    assert untouched(outside)


def test_write_file_never_writes_outside_when_symlink_swapped_in_after_the_check(
    tools: ToolRunner, root: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def swap() -> None:
        (root / "src" / "auth.js").unlink()
        (root / "src" / "auth.js").symlink_to(outside / "auth.js")

    swap_after_check(monkeypatch, swap)
    failure = refused(tools, "write_file", path="src/auth.js", content="pwned")
    assert failure.code is ToolCode.OUTSIDE_WORKSPACE
    assert "became a symbolic link after the path was checked" in failure.message
    assert untouched(outside)


@pytest.mark.parametrize("path", ["src/auth.js", "src/new.js", "src/new/deeper.js"])
def test_write_file_never_writes_outside_when_directory_swapped_in_after_the_check(
    tools: ToolRunner, root: Path, outside: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    def swap() -> None:
        (root / "src").rename(root / "src.old")
        (root / "src").symlink_to(outside)

    swap_after_check(monkeypatch, swap)
    failure = refused(tools, "write_file", path=path, content="pwned")
    assert failure.code is ToolCode.OUTSIDE_WORKSPACE
    assert "became a symbolic link after the path was checked" in failure.message
    assert untouched(outside)


def test_write_file_replaces_the_link_not_its_target_when_swapped_just_before_the_rename(
    tools: ToolRunner, root: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = workspace_module._Transaction.swap_in

    def swap_then_rename(self: Any) -> None:
        (root / "src" / "auth.js").unlink()
        (root / "src" / "auth.js").symlink_to(outside / "auth.js")
        original(self)

    monkeypatch.setattr(workspace_module._Transaction, "swap_in", swap_then_rename)
    tools.run("write_file", {"path": "src/auth.js", "content": "new\n"})
    assert untouched(outside)
    assert not (root / "src" / "auth.js").is_symlink()
    assert (root / "src" / "auth.js").read_text() == "new\n"


@pytest.mark.parametrize(
    "path", [".git/config", ".git/hooks/pre-commit", "vendor/lib/.git/config", ".GIT/config"]
)
def test_write_file_refuses_git_directory(tools: ToolRunner, root: Path, path: str) -> None:
    assert refused(tools, "write_file", path=path, content="x").code is ToolCode.PROTECTED_PATH
    assert (root / ".git" / "config").read_text() == "[core]\n"
    assert not (root / ".git" / "hooks").exists()


def test_write_file_refuses_git_directory_reached_through_a_symlink(
    tools: ToolRunner, root: Path
) -> None:
    (root / "gitdir").symlink_to(".git")
    failure = refused(tools, "write_file", path="gitdir/config", content="x")
    assert failure.code is ToolCode.PROTECTED_PATH
    assert (root / ".git" / "config").read_text() == "[core]\n"


@pytest.mark.parametrize("path", [".agent-service/settings.json", "./.agent-service/token"])
def test_write_file_refuses_the_agent_config_directory(
    tools: ToolRunner, root: Path, path: str
) -> None:
    assert refused(tools, "write_file", path=path, content="{}").code is ToolCode.PROTECTED_PATH
    assert not (root / ".agent-service").exists()


def test_read_file_may_read_the_git_directory(tools: ToolRunner) -> None:
    assert tools.run("read_file", {"path": ".git/config"}) == {"content": "[core]\n"}


def test_write_file_refuses_content_over_the_size_limit(tools: ToolRunner, root: Path) -> None:
    failure = refused(tools, "write_file", path="big.txt", content="x" * 1001)
    assert failure.code is ToolCode.TOO_LARGE
    assert not (root / "big.txt").exists()


def test_write_file_removes_directories_it_made_when_it_fails(
    tools: ToolRunner, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_write(*args: Any) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(workspace_module, "_write_temp", failing_write)
    with pytest.raises(OSError):
        tools.run("write_file", {"path": "new/deeper/file.txt", "content": "x"})
    assert not (root / "new").exists()


# ---- arguments ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("read_file", {}),
        ("read_file", {"path": 3}),
        ("read_file", {"path": "a", "extra": 1}),
        ("write_file", {"path": "a"}),
        ("git.diff", {"staged": "maybe"}),
        ("apply_patch", {"patch": "..."}),
        ("read_file", {"path": ""}),
        ("read_file", {"path": "a\0b"}),
    ],
)
def test_tools_refuse_arguments_that_do_not_fit_the_schema(
    tools: ToolRunner, tool: str, arguments: dict[str, Any]
) -> None:
    assert refused(tools, tool, **arguments).code is ToolCode.INVALID_ARGUMENTS


def test_tools_refuse_unknown_tool(tools: ToolRunner) -> None:
    assert refused(tools, "rm_rf", path=".").code is ToolCode.UNKNOWN_TOOL
