"""A scriptable ACP editor for tests: the SDK's client side, serving a workspace directory.

It answers `fs/read_text_file` and `fs/write_text_file` from a real directory, runs
`terminal/*` commands as real processes (or offers no terminals), answers permission requests
with the options a test scripts, and records every session update and request it gets.
`spawn_bridge` starts the real `agent-service acp` process and connects this editor to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acp import PROTOCOL_VERSION, RequestError, spawn_agent_process
from acp.client.connection import ClientSideConnection
from acp.schema import (
    AllowedOutcome,
    ClientCapabilities,
    CreateTerminalResponse,
    DeniedOutcome,
    EnvVariable,
    FileSystemCapabilities,
    Implementation,
    PermissionOption,
    ReadTextFileResponse,
    ReleaseTerminalResponse,
    RequestPermissionResponse,
    TerminalExitStatus,
    TerminalOutputResponse,
    ToolCallUpdate,
    WaitForTerminalExitResponse,
    WriteTextFileResponse,
)

from tests.support.procs import ROOT

# What the scripted user picks in a permission dialog, by option kind; "wait" never answers
# (until the turn is cancelled, when the editor answers "cancelled" as ACP says it must).
ALLOW_ONCE = "allow_once"
ALLOW_ALWAYS = "allow_always"
REJECT_ONCE = "reject_once"
REJECT_ALWAYS = "reject_always"
WAIT = "wait"


@dataclass
class _Terminal:
    process: asyncio.subprocess.Process
    output: bytes = b""
    limit: int | None = None
    reader: asyncio.Task[None] | None = None


@dataclass
class ScriptedEditor:
    """The editor side of one connection; `updates` and `calls` record what the agent did."""

    workspace: Path
    terminals: bool = True
    permission: str = ALLOW_ONCE
    updates: list[Any] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    permission_requests: list[ToolCallUpdate] = field(default_factory=list)
    permission_options: list[list[PermissionOption]] = field(default_factory=list)
    permission_asked: asyncio.Event = field(default_factory=asyncio.Event)
    _cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    _terminals: dict[str, _Terminal] = field(default_factory=dict)

    def capabilities(self) -> ClientCapabilities:
        return ClientCapabilities(
            fs=FileSystemCapabilities(read_text_file=True, write_text_file=True),
            terminal=self.terminals,
        )

    def cancel_pending_permissions(self) -> None:
        """The user pressed stop: every open permission dialog answers `cancelled`."""
        self._cancelled.set()

    def of_kind(self, kind: str) -> list[Any]:
        """The recorded updates of one `sessionUpdate` kind."""
        return [update for update in self.updates if update.session_update == kind]

    def text(self) -> str:
        """The agent's message chunks, concatenated."""
        return "".join(chunk.content.text for chunk in self.of_kind("agent_message_chunk"))

    # ---- the ACP Client methods ----------------------------------------------------------

    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
        self.updates.append(update)

    async def request_permission(
        self,
        session_id: str,
        tool_call: ToolCallUpdate,
        options: list[PermissionOption],
        **kwargs: Any,
    ) -> RequestPermissionResponse:
        self.permission_requests.append(tool_call)
        self.permission_options.append(options)
        self.permission_asked.set()
        if self.permission == WAIT:
            await self._cancelled.wait()
            return RequestPermissionResponse(outcome=DeniedOutcome(outcome="cancelled"))
        chosen = next(option for option in options if option.kind == self.permission)
        return RequestPermissionResponse(
            outcome=AllowedOutcome(outcome="selected", option_id=chosen.option_id)
        )

    async def read_text_file(
        self,
        session_id: str,
        path: str,
        line: int | None = None,
        limit: int | None = None,
        **kwargs: Any,
    ) -> ReadTextFileResponse:
        self.calls.append(("fs/read_text_file", {"path": path}))
        file = self._inside(path)
        if not file.is_file():
            raise RequestError.resource_not_found(path)
        return ReadTextFileResponse(content=file.read_text(encoding="utf-8"))

    async def write_text_file(
        self, session_id: str, path: str, content: str, **kwargs: Any
    ) -> WriteTextFileResponse:
        self.calls.append(("fs/write_text_file", {"path": path, "content": content}))
        file = self._inside(path)
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(content, encoding="utf-8")
        return WriteTextFileResponse()

    async def create_terminal(
        self,
        session_id: str,
        command: str,
        args: list[str] | None = None,
        env: list[EnvVariable] | None = None,
        cwd: str | None = None,
        output_byte_limit: int | None = None,
        **kwargs: Any,
    ) -> CreateTerminalResponse:
        if not self.terminals:
            raise RequestError.method_not_found("terminal/create")
        self.calls.append(("terminal/create", {"command": command, "args": args, "cwd": cwd}))
        process = await asyncio.create_subprocess_exec(
            command,
            *(args or []),
            cwd=cwd,
            env={**os.environ, **{v.name: v.value for v in env or []}},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        terminal = _Terminal(process, limit=output_byte_limit)
        terminal.reader = asyncio.create_task(self._collect(terminal))
        terminal_id = f"term-{len(self._terminals) + 1}"
        self._terminals[terminal_id] = terminal
        return CreateTerminalResponse(terminal_id=terminal_id)

    async def wait_for_terminal_exit(
        self, session_id: str, terminal_id: str, **kwargs: Any
    ) -> WaitForTerminalExitResponse:
        terminal = self._terminals[terminal_id]
        code = await terminal.process.wait()
        assert terminal.reader is not None
        await terminal.reader
        return WaitForTerminalExitResponse(exit_code=code)

    async def terminal_output(
        self, session_id: str, terminal_id: str, **kwargs: Any
    ) -> TerminalOutputResponse:
        terminal = self._terminals[terminal_id]
        data, truncated = terminal.output, False
        if terminal.limit is not None and len(data) > terminal.limit:
            data, truncated = data[-terminal.limit :], True
        code = terminal.process.returncode
        return TerminalOutputResponse(
            output=data.decode("utf-8", "replace"),
            truncated=truncated,
            exit_status=None if code is None else TerminalExitStatus(exit_code=code),
        )

    async def release_terminal(
        self, session_id: str, terminal_id: str, **kwargs: Any
    ) -> ReleaseTerminalResponse:
        self.calls.append(("terminal/release", {"terminal_id": terminal_id}))
        terminal = self._terminals.pop(terminal_id)
        if terminal.process.returncode is None:
            terminal.process.kill()
            await terminal.process.wait()
        return ReleaseTerminalResponse()

    def on_connect(self, conn: Any) -> None:
        pass

    # ---- helpers ----------------------------------------------------------------------

    def _inside(self, path: str) -> Path:
        file = Path(path)
        assert file.is_absolute(), f"ACP paths are absolute, got {path!r}"
        assert file.resolve().is_relative_to(self.workspace.resolve()), path
        return file

    @staticmethod
    async def _collect(terminal: _Terminal) -> None:
        assert terminal.process.stdout is not None
        terminal.output = await terminal.process.stdout.read()


@contextlib.asynccontextmanager
async def spawn_bridge(
    editor: ScriptedEditor, *args: str, log_path: Path
) -> AsyncIterator[ClientSideConnection]:
    """Start `agent-service acp ARGS` with this editor on its stdio; initialize; stop it after."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    with log_path.open("ab") as log:
        async with spawn_agent_process(
            editor,
            sys.executable,
            "-m",
            "agent_service",
            "acp",
            *args,
            env=env,
            cwd=ROOT,
            transport_kwargs={"stderr": log, "shutdown_timeout": 15.0},
        ) as (conn, process):
            await conn.initialize(
                protocol_version=PROTOCOL_VERSION,
                client_capabilities=editor.capabilities(),
                client_info=Implementation(name="scripted-editor", version="1"),
            )
            yield conn
        assert process.returncode == 0, f"agent-service acp exited {process.returncode}"
