"""One TOML file that can hold every flag of every command.

    # ~/.config/agent-service/config.toml (or --config FILE, env AGENT_CONFIG)
    host = "127.0.0.1"          # top level: every command that has --host

    [up]
    gateway-port = 9000

    [orchestrator]
    max-steps = 40

    [ide]
    workspace = "~/src/project"

Keys are the flags' long names without the dashes in front. A value counts as the
flag's default, so the order of precedence is: the flag, then its environment
variable, then this file, then the built-in default. Values go through the same
checks as flags, and a key no command knows is an error naming it.
"""

from __future__ import annotations

import argparse
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agent_service.failures import OperatorError

CONFIG_VAR = "AGENT_CONFIG"
_ENV_NAME = re.compile(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b")


def default_path() -> Path:
    """$XDG_CONFIG_HOME/agent-service/config.toml, else ~/.config/agent-service/config.toml."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "agent-service" / "config.toml"


def chosen_path(argv: Sequence[str]) -> Path | None:
    """The file named by --config (or AGENT_CONFIG), else the default one if it exists."""
    for index, arg in enumerate(argv):
        if arg == "--config" and index + 1 < len(argv):
            return Path(argv[index + 1]).expanduser()
        if arg.startswith("--config="):
            return Path(arg.split("=", 1)[1]).expanduser()
    named = os.environ.get(CONFIG_VAR)
    if named:
        return Path(named).expanduser()
    default = default_path()
    return default if default.is_file() else None


def load(path: Path | None) -> dict[str, Any]:
    """The file's settings; an unreadable or invalid file is the operator's to fix."""
    if path is None:
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise OperatorError(
            f"cannot read config file {path}: {exc.strerror}", "check --config"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise OperatorError(
            f"config file {path} is not valid TOML: {exc}", "fix the file"
        ) from None


def add_config_flag(parser: argparse.ArgumentParser) -> None:
    """--config FILE on every command (read before parsing, see `chosen_path`)."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"TOML file of settings per command (env {CONFIG_VAR}; default {default_path()} "
        "if it exists)",
    )


def apply(
    commands: Mapping[str, argparse.ArgumentParser], settings: Mapping[str, Any], path: Path
) -> None:
    """Make the file's values the defaults of the commands' flags, unless their env var is set."""
    shared = {key: value for key, value in settings.items() if not isinstance(value, dict)}
    for name, table in settings.items():
        if isinstance(table, dict) and name not in commands:
            raise OperatorError(
                f"config file {path}: no command [{name}]", f"commands: {', '.join(commands)}"
            )
    for key in shared:
        if not any(_action(parser, key) for parser in commands.values()):
            raise OperatorError(f"config file {path}: no command has the setting {key!r}")
    for name, parser in commands.items():
        table = settings.get(name, {})
        for key, value in {
            **{k: v for k, v in shared.items() if _action(parser, k)},
            **table,
        }.items():
            action = _action(parser, key)
            if action is None:
                raise OperatorError(
                    f"config file {path}: [{name}] has no setting {key!r}",
                    f"see agent-service {name} --help",
                )
            if not _env_is_set(action):
                action.default = _as_default(action, value)


def _action(parser: argparse.ArgumentParser, key: str) -> argparse.Action | None:
    flag = f"--{key}"
    for action in parser._actions:
        if flag in action.option_strings and key not in ("help", "version", "config"):
            return action
    return None


def _env_is_set(action: argparse.Action) -> bool:
    """Whether the flag's environment variable (named in its help, as every flag's is) is set."""
    return any(os.environ.get(var) for var in _ENV_NAME.findall(action.help or ""))


def _as_default(action: argparse.Action, value: Any) -> Any:
    """A TOML value as the flag's default: strings, so argparse checks them like typed flags."""
    if isinstance(action, argparse._StoreTrueAction):
        return bool(value)
    if isinstance(action, argparse._AppendAction):
        items = value if isinstance(value, list) else [value]
        return [action.type(str(item)) if action.type else str(item) for item in items]  # type: ignore[operator]
    if isinstance(value, str) and action.type is Path:
        return str(Path(value).expanduser())
    return str(value)
