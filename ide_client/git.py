"""Git in the workspace, hardened so that neither the model nor the repository runs a program.

Every call names its repository explicitly (`--git-dir`/`--work-tree` of the `.git` the IDE
found itself, see `repository.py`), so git never discovers one, and a fake bare repository
written into the workspace is never used. Every call runs:
- with the caller's `GIT_*` variables removed (GIT_DIR, GIT_CONFIG_PARAMETERS, GIT_SSH, ...),
  no system or global configuration (`GIT_CONFIG_NOSYSTEM`, `GIT_CONFIG_GLOBAL=/dev/null`),
  no system attributes, no terminal prompt, no pager, no optional locks;
- with command-line configuration (which wins over the repository's own) that turns off
  everything that could run a program: `core.fsmonitor=false`, `core.hooksPath=/dev/null`,
  `core.pager=cat`, `protocol.allow=never` (no transport: a partial clone's lazy fetch cannot
  reach `core.sshCommand`, a remote helper or a credential helper), `credential.helper`
  emptied, `safe.bareRepository=explicit`, and every `filter.<name>` the repository's
  configuration defines emptied (`clean`, `smudge`, `process`; `required=false`), so a
  `.gitattributes` naming one runs nothing;
- for `git diff`, `--no-ext-diff --no-textconv` (no diff drivers, `diff.external` or
  textconv) and `--ignore-submodules=dirty` (no `git status` inside submodules).

Overrides go in `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n`, not `-c`: a
filter's name may contain `=`, which `-c` would split on.

Output is read as it comes and the process is killed once it passes the caller's limit, so a
huge diff is refused (`too_large`) without being held in memory.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ide_client.errors import ToolCode, ToolFailure
from ide_client.repository import Repository, find_repository

DEFAULT_GIT_TIMEOUT = 10.0
_READ_CHUNK = 1 << 16
_EXIT_GRACE_S = 0.1
_STDERR_TAIL_BYTES = 8192
_NO_FILE = os.devnull
_SETTINGS = (
    ("safe.bareRepository", "explicit"),
    ("core.fsmonitor", "false"),
    ("core.hooksPath", _NO_FILE),
    ("core.pager", "cat"),
    ("protocol.allow", "never"),
    ("credential.helper", ""),
)
_FILTER_COMMANDS = ("clean", "smudge", "process")
# Stable, parseable output whatever the configuration: no colour, no external diff programs
# or textconv filters, no status run inside submodules, and the a/ b/ prefixes `apply_patch`
# expects.
_DIFF_OPTIONS = (
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--ignore-submodules=dirty",
    "--src-prefix=a/",
    "--dst-prefix=b/",
    "--relative",
)
_PROTECTION_KEYS = r"^(core\.hookspath|include\.path|includeif\..+\.path)$"


@dataclass(frozen=True)
class _Outcome:
    returncode: int
    stdout: bytes
    stderr: str
    over_limit: bool

    def error_line(self) -> str:
        lines = self.stderr.strip().splitlines()
        return lines[-1] if lines else f"exit {self.returncode}"


@dataclass(frozen=True)
class GitManagedPaths:
    """Where a repository's git looks for programs and configuration outside its git dir:
    hook directories (`core.hooksPath`) and configuration files pulled in by `include`."""

    directories: tuple[Path, ...]
    files: tuple[Path, ...]


def run_git(root: Path, *args: str, timeout: float = DEFAULT_GIT_TIMEOUT) -> str:
    """Run hardened `git args...` on the repository holding `root`; its stdout, or ToolFailure."""
    repository = find_repository(root)
    if repository is None:
        raise ToolFailure(ToolCode.NOT_A_GIT_REPO, f"{root} is not inside a git repository")
    done = _run(_command(repository, args), root, _environment(repository, timeout), timeout)
    if done.returncode != 0:
        raise ToolFailure(ToolCode.TOOL_FAILED, f"git {args[0]} failed: {done.error_line()}")
    return done.stdout.decode("utf-8", "replace")


def init_repository(path: Path, timeout: float = DEFAULT_GIT_TIMEOUT) -> None:
    """`git init` in `path` (no repository exists yet, so none is named)."""
    done = _run(["git", "init", "--quiet", "."], path, _base_environment(), timeout)
    if done.returncode != 0:
        raise ToolFailure(ToolCode.TOOL_FAILED, f"git init failed: {done.error_line()}")


def git_diff(
    repository: Repository,
    cwd: Path,
    pathspec: str | None,
    *,
    staged: bool,
    max_bytes: int,
    timeout: float = DEFAULT_GIT_TIMEOUT,
) -> str:
    """`git diff` of `cwd` (or of `pathspec` in it), limited to its files and to `max_bytes`."""
    deadline = time.monotonic() + timeout
    env = _environment(repository, timeout)
    args = ["diff", *_DIFF_OPTIONS]
    if staged:
        args.append("--cached")
    args += ["--", f":(literal){pathspec}" if pathspec else "."]
    done = _run(_command(repository, args), cwd, env, deadline - time.monotonic(), limit=max_bytes)
    if done.over_limit:
        raise ToolFailure(
            ToolCode.TOO_LARGE,
            f"the diff is larger than the {max_bytes}-byte limit; ask for one path at a time",
        )
    if done.returncode != 0:
        raise ToolFailure(ToolCode.TOOL_FAILED, f"git diff failed: {done.error_line()}")
    return done.stdout.decode("utf-8", "replace")


def git_managed_paths(
    repository: Repository, timeout: float = DEFAULT_GIT_TIMEOUT
) -> GitManagedPaths:
    """Hook directories and included configuration files as the user's own git sees them.

    Read with the user's system and global configuration (their next `git commit` uses it);
    reading configuration runs no program. When git cannot tell (missing, failing), nothing
    beyond the git directory is known, and the git directory is protected anyway.
    """
    args = ("config", "-z", "--show-origin", "--type=path", "--get-regexp", _PROTECTION_KEYS)
    env = {**_base_environment(), **_overrides(_SETTINGS)}
    del env["GIT_CONFIG_NOSYSTEM"], env["GIT_CONFIG_GLOBAL"]
    try:
        done = _run(_command(repository, args), repository.work_tree, env, timeout)
    except ToolFailure:
        return GitManagedPaths((), ())
    directories: list[Path] = []
    files: list[Path] = []
    for origin, key, value in _origin_entries(done.stdout.decode("utf-8", "replace")):
        if key == "core.hookspath":
            hooks = Path(os.path.realpath(repository.work_tree / value))
            directories.append(hooks)
            if hooks.name == "_":
                # husky >= 9: the hooks in `.husky/_` run the scripts of `.husky/`.
                directories.append(hooks.parent)
        elif origin is not None:
            files.append(Path(os.path.realpath(origin.parent / value)))
    return GitManagedPaths(tuple(directories), tuple(files))


def _origin_entries(output: str) -> list[tuple[Path | None, str, str]]:
    """(file the key came from, key, value) of `git config -z --show-origin` output."""
    fields = output.split("\0")
    entries: list[tuple[Path | None, str, str]] = []
    for origin, entry in zip(fields[0::2], fields[1::2], strict=False):
        key, _, value = entry.partition("\n")
        source = Path(origin[len("file:") :]) if origin.startswith("file:") else None
        entries.append((source, key, value))
    return entries


def _command(repository: Repository, args: Sequence[str]) -> list[str]:
    return [
        "git",
        "--no-pager",
        f"--git-dir={repository.git_dir}",
        f"--work-tree={repository.work_tree}",
        *args,
    ]


def _base_environment() -> dict[str, str]:
    """The caller's environment without any GIT_* variable, and git's own isolation."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=_NO_FILE,
        GIT_ATTR_NOSYSTEM="1",
        GIT_OPTIONAL_LOCKS="0",
        GIT_TERMINAL_PROMPT="0",
        GIT_PAGER="cat",
        GIT_PROTOCOL_FROM_USER="0",
    )
    return env


def _environment(repository: Repository, timeout: float) -> dict[str, str]:
    """The hardened environment, with every filter the repository configures emptied."""
    env = {**_base_environment(), **_overrides(_SETTINGS)}
    names = _configured_filters(repository, env, timeout)
    emptied = [(f"filter.{name}.{command}", "") for name in names for command in _FILTER_COMMANDS]
    required = [(f"filter.{name}.required", "false") for name in names]
    env.update(_overrides((*_SETTINGS, *emptied, *required)))
    return env


def _configured_filters(repository: Repository, env: dict[str, str], timeout: float) -> list[str]:
    """Names of the `filter.<name>.*` drivers in the repository's configuration (with includes)."""
    args = ("config", "-z", "--name-only", "--get-regexp", r"^filter\.")
    done = _run(_command(repository, args), repository.work_tree, env, timeout)
    if done.returncode not in (0, 1):  # 1: no such key
        raise ToolFailure(
            ToolCode.TOOL_FAILED, f"git config could not be read: {done.error_line()}"
        )
    names = []
    for key in done.stdout.decode("utf-8", "surrogateescape").split("\0"):
        section, _, rest = key.partition(".")
        name, _, _variable = rest.rpartition(".")
        if section == "filter" and name and name not in names:
            names.append(name)
    return names


def _overrides(settings: Sequence[tuple[str, str]]) -> dict[str, str]:
    env = {"GIT_CONFIG_COUNT": str(len(settings))}
    for index, (key, value) in enumerate(settings):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


def _run(
    command: list[str],
    cwd: Path,
    env: dict[str, str],
    timeout: float,
    *,
    limit: int | None = None,
) -> _Outcome:
    """Run git, reading stdout as it comes: stop (and kill it) past `limit` bytes or `timeout`."""
    name = next((arg for arg in command[1:] if not arg.startswith("-")), "git")
    deadline = time.monotonic() + timeout
    with tempfile.TemporaryFile() as stderr:
        try:
            process = subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
        except FileNotFoundError:
            raise ToolFailure(ToolCode.TOOL_FAILED, "git is not installed") from None
        try:
            stdout, over_limit = _read_until(process, deadline, limit)
            if not over_limit:
                process.wait(max(deadline - time.monotonic(), _EXIT_GRACE_S))
        except subprocess.TimeoutExpired:
            raise ToolFailure(
                ToolCode.TIMEOUT, f"git {name} did not finish within {timeout:g} s"
            ) from None
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            assert process.stdout is not None
            process.stdout.close()
        stderr.seek(max(stderr.seek(0, os.SEEK_END) - _STDERR_TAIL_BYTES, 0))
        errors = stderr.read().decode("utf-8", "replace")
    return _Outcome(process.returncode, stdout, errors, over_limit)


def _read_until(
    process: subprocess.Popen[bytes], deadline: float, limit: int | None
) -> tuple[bytes, bool]:
    """Stdout up to its end, or up to `limit` + 1 bytes (then True); TimeoutExpired at deadline."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    chunks: list[bytes] = []
    size = 0
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise subprocess.TimeoutExpired(process.args, 0)
            chunk = os.read(fd, _READ_CHUNK)
            if not chunk:
                return b"".join(chunks), False
            chunks.append(chunk)
            size += len(chunk)
            if limit is not None and size > limit:
                return b"", True
