"""Git in the workspace: `git diff` for the tool, plain commands for the sample workspace.

Git runs as a subprocess with a timeout, in the workspace root, without the caller's GIT_DIR
and friends (which would point it at another repository), and without optional locks, so a
`git diff` never contends with the user's own git commands.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ide_client.errors import ToolCode, ToolFailure

DEFAULT_GIT_TIMEOUT = 10.0
_REPOSITORY_VARIABLES = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
)
# Stable, parseable output whatever the user's configuration: no colour, no external diff
# programs or textconv filters, and the a/ b/ prefixes `apply_patch` expects.
_DIFF_OPTIONS = (
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--src-prefix=a/",
    "--dst-prefix=b/",
    "--relative",
)


def run_git(root: Path, *args: str, timeout: float = DEFAULT_GIT_TIMEOUT) -> str:
    """Run `git args...` in `root` and return its stdout; ToolFailure when it fails or hangs."""
    done = _run(root, args, timeout)
    if done.returncode != 0:
        raise ToolFailure(ToolCode.TOOL_FAILED, f"git {args[0]} failed: {_last_error_line(done)}")
    return done.stdout.decode("utf-8", "replace")


def git_diff(
    root: Path,
    pathspec: str | None,
    *,
    staged: bool,
    max_bytes: int,
    timeout: float = DEFAULT_GIT_TIMEOUT,
) -> str:
    """`git diff` of the workspace (or of `pathspec` in it), limited to the workspace's files."""
    probe = _run(root, ("rev-parse", "--show-toplevel"), timeout)
    if probe.returncode != 0:
        raise ToolFailure(
            ToolCode.NOT_A_GIT_REPO,
            f"the workspace is not a git repository ({_last_error_line(probe)})",
        )
    args = ["diff", *_DIFF_OPTIONS]
    if staged:
        args.append("--cached")
    args += ["--", f":(literal){pathspec}" if pathspec else "."]
    diff = run_git(root, *args, timeout=timeout)
    if len(diff.encode("utf-8")) > max_bytes:
        raise ToolFailure(
            ToolCode.TOO_LARGE,
            f"the diff is larger than the {max_bytes}-byte limit; ask for one path at a time",
        )
    return diff


def _run(root: Path, args: tuple[str, ...], timeout: float) -> subprocess.CompletedProcess[bytes]:
    env = {key: value for key, value in os.environ.items() if key not in _REPOSITORY_VARIABLES}
    env.update(GIT_OPTIONAL_LOCKS="0", GIT_TERMINAL_PROMPT="0")
    try:
        return subprocess.run(
            ["git", "--no-pager", *args],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise ToolFailure(ToolCode.TOOL_FAILED, "git is not installed") from None
    except subprocess.TimeoutExpired:
        raise ToolFailure(
            ToolCode.TIMEOUT, f"git {args[0]} did not finish within {timeout:g} s"
        ) from None


def _last_error_line(done: subprocess.CompletedProcess[bytes]) -> str:
    lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else f"exit {done.returncode}"
