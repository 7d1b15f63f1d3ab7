"""list_files and search show the workspace as git sees it, bounded, and never anything outside it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ide_client.errors import ToolCode, ToolFailure
from ide_client.tools import ToolRunner
from ide_client.workspace import Target, Workspace

SECRET = "outside secret\n"
DISCOVERY = ["list_files", "search"]


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "secret.txt").write_text(SECRET)
    (directory / "auth.js").write_text(SECRET)
    return directory


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A workspace that is not a git repository, with ignore files at two levels."""
    directory = tmp_path / "ws"
    (directory / "src" / "lib").mkdir(parents=True)
    (directory / "src" / "auth.js").write_text("function login() {\n  return token;\n}\n")
    (directory / "src" / "lib" / "util.js").write_text("// util\nconst token = 1;\n")
    (directory / "README.md").write_text("# readme\nsecret token docs\n")
    (directory / "build").mkdir()
    (directory / "build" / "auth.js").write_text("function login() {}\n")
    (directory / "debug.log").write_text("token\n")
    (directory / "src" / "keep.log").write_text("token\n")
    (directory / "src" / "lib" / "gen.js").write_text("const token = 2;\n")
    (directory / ".gitignore").write_text("build/\n*.log\n")
    (directory / "src" / ".gitignore").write_text("!keep.log\n")
    (directory / "src" / "lib" / ".gitignore").write_text("gen.js\n")
    (directory / ".git").mkdir()
    (directory / ".git" / "config").write_text("[core] token\n")
    (directory / "image.bin").write_bytes(b"token\0\x01\x02")
    return directory


@pytest.fixture
def tools(root: Path) -> ToolRunner:
    return ToolRunner(Workspace(root, max_file_bytes=1000), search_timeout=2.0)


def refused(tools: ToolRunner, tool: str, **arguments: Any) -> ToolFailure:
    with pytest.raises(ToolFailure) as caught:
        tools.run(tool, arguments)
    return caught.value


def paths(output: dict[str, Any]) -> list[str]:
    return [entry["path"] for entry in output.get("files", output.get("matches", []))]


def arguments_for(tool: str, path: str) -> dict[str, Any]:
    return {"path": path} if tool == "list_files" else {"path": path, "query": "secret"}


# ---- list_files -----------------------------------------------------------------------------


def test_list_files_lists_what_git_would_show_with_sizes(tools: ToolRunner, root: Path) -> None:
    output = tools.run("list_files", {})
    assert paths(output) == [
        ".gitignore",
        "README.md",
        "image.bin",
        "src/.gitignore",
        "src/auth.js",
        "src/keep.log",
        "src/lib/.gitignore",
        "src/lib/util.js",
    ]
    sizes = {entry["path"]: entry["size"] for entry in output["files"]}
    assert sizes["src/auth.js"] == (root / "src" / "auth.js").stat().st_size
    assert output["truncated"] is False


def test_list_files_finds_a_file_by_its_base_name(tools: ToolRunner) -> None:
    assert paths(tools.run("list_files", {"pattern": "auth.js"})) == ["src/auth.js"]
    assert paths(tools.run("list_files", {"pattern": "src/**/*.js"})) == [
        "src/auth.js",
        "src/lib/util.js",
    ]


def test_list_files_applies_the_ignore_files_above_the_directory_it_lists(
    tools: ToolRunner,
) -> None:
    assert paths(tools.run("list_files", {"path": "src/lib"})) == [
        "src/lib/.gitignore",
        "src/lib/util.js",
    ]


def test_list_files_reads_git_info_exclude(tools: ToolRunner, root: Path) -> None:
    (root / ".git" / "info").mkdir()
    (root / ".git" / "info" / "exclude").write_text("README.md\n")
    assert "README.md" not in paths(tools.run("list_files", {}))


def test_list_files_stops_at_max_results_and_says_so(tools: ToolRunner) -> None:
    output = tools.run("list_files", {"max_results": 2})
    assert paths(output) == [".gitignore", "README.md"]
    assert output["truncated"] is True


def test_list_files_refuses_a_file_as_the_directory(tools: ToolRunner) -> None:
    assert refused(tools, "list_files", path="README.md").code is ToolCode.NOT_FOUND


# ---- search ---------------------------------------------------------------------------------


def test_search_returns_path_line_and_text_of_every_match(tools: ToolRunner) -> None:
    output = tools.run("search", {"query": "token"})
    assert output["matches"] == [
        {"path": "README.md", "line": 2, "text": "secret token docs"},
        {"path": "src/auth.js", "line": 2, "text": "  return token;"},
        {"path": "src/keep.log", "line": 1, "text": "token"},
        {"path": "src/lib/util.js", "line": 2, "text": "const token = 1;"},
    ]
    assert output["truncated"] is False


def test_search_takes_a_regex_a_glob_and_any_case(tools: ToolRunner) -> None:
    output = tools.run(
        "search", {"query": r"FUNCTION\s+\w+\(", "regex": True, "ignore_case": True, "glob": "*.js"}
    )
    assert output["matches"] == [{"path": "src/auth.js", "line": 1, "text": "function login() {"}]


def test_search_searches_one_file_when_the_path_names_one(tools: ToolRunner) -> None:
    assert paths(tools.run("search", {"query": "token", "path": "src/lib/util.js"})) == [
        "src/lib/util.js"
    ]


def test_search_stops_at_max_results_and_says_so(tools: ToolRunner) -> None:
    output = tools.run("search", {"query": "token", "max_results": 1})
    assert paths(output) == ["README.md"] and output["truncated"] is True


def test_search_refuses_an_invalid_regex(tools: ToolRunner) -> None:
    failure = refused(tools, "search", query="(unclosed", regex=True)
    assert failure.code is ToolCode.INVALID_ARGUMENTS
    assert "regular expression" in failure.message


def test_search_gives_up_on_a_catastrophic_regex_with_timeout(
    root: Path,
) -> None:
    (root / "src" / "slow.txt").write_text("a" * 60 + "!\n")
    tools = ToolRunner(Workspace(root), search_timeout=0.2)
    failure = refused(tools, "search", query=r"(a|aa)+$", regex=True, path="src/slow.txt")
    assert failure.code is ToolCode.TIMEOUT


# ---- confinement: every escape read_file refuses ---------------------------------------------


@pytest.mark.parametrize("tool", DISCOVERY)
@pytest.mark.parametrize("path", ["..", "../outside", "src/../../outside"])
def test_discovery_refuses_dotdot_when_it_leaves_the_workspace(
    tools: ToolRunner, tool: str, path: str
) -> None:
    failure = refused(tools, tool, **arguments_for(tool, path))
    assert failure.code is ToolCode.OUTSIDE_WORKSPACE


@pytest.mark.parametrize("tool", DISCOVERY)
def test_discovery_refuses_absolute_path_even_when_inside(
    tools: ToolRunner, root: Path, tool: str
) -> None:
    failure = refused(tools, tool, **arguments_for(tool, str(root / "src")))
    assert failure.code is ToolCode.OUTSIDE_WORKSPACE


@pytest.mark.parametrize("tool", DISCOVERY)
def test_discovery_refuses_a_symlink_path_that_points_outside(
    tools: ToolRunner, root: Path, outside: Path, tool: str
) -> None:
    (root / "out").symlink_to(outside)
    (root / "leak.txt").symlink_to(outside / "secret.txt")
    for path in ("out", "leak.txt"):
        failure = refused(tools, tool, **arguments_for(tool, path))
        assert failure.code is ToolCode.OUTSIDE_WORKSPACE


@pytest.mark.parametrize("tool", DISCOVERY)
def test_discovery_never_lists_or_follows_symlinks_inside_the_walk(
    tools: ToolRunner, root: Path, outside: Path, tool: str
) -> None:
    (root / "src" / "out").symlink_to(outside)
    (root / "src" / "leak.txt").symlink_to(outside / "secret.txt")
    (root / "src" / "lib" / ".gitignore").unlink()
    (root / "src" / "lib" / ".gitignore").symlink_to(outside / "secret.txt")
    output = tools.run(tool, arguments_for(tool, "src"))
    listed = paths(output)
    assert not [path for path in listed if "out" in path.split("/") or "leak" in path]
    assert SECRET.strip() not in str(output)
    if tool == "list_files":
        assert "src/lib/gen.js" in listed  # the outside "ignore file" was not read


@pytest.mark.parametrize("tool", DISCOVERY)
def test_discovery_refuses_a_directory_swapped_for_a_symlink_after_the_check(
    tools: ToolRunner, root: Path, outside: Path, tool: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def swap() -> None:
        (root / "src").rename(root / "src.old")
        (root / "src").symlink_to(outside)

    swap_after_check(monkeypatch, "src", swap)
    failure = refused(tools, tool, **arguments_for(tool, "src"))
    assert failure.code is ToolCode.OUTSIDE_WORKSPACE
    assert "became a symbolic link after the path was checked" in failure.message
    assert SECRET.strip() not in failure.message


def test_search_skips_a_file_swapped_for_a_symlink_after_the_check(
    tools: ToolRunner, root: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def swap() -> None:
        (root / "README.md").unlink()
        (root / "README.md").symlink_to(outside / "secret.txt")

    swap_after_check(monkeypatch, "README.md", swap)
    output = tools.run("search", {"query": "secret"})
    assert output["matches"] == []


def swap_after_check(monkeypatch: pytest.MonkeyPatch, path: str, swap: Callable[[], None]) -> None:
    """Run `swap` right after `path` passes its check, before it is opened."""
    original = Workspace.resolve
    done: list[bool] = []

    def resolve_then_swap(self: Workspace, asked: str, *, write: bool = False) -> Target:
        target = original(self, asked, write=write)
        if asked == path and not done:
            done.append(True)
            swap()
        return target

    monkeypatch.setattr(Workspace, "resolve", resolve_then_swap)
