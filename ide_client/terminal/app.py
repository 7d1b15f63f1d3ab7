"""The interactive terminal: a line editor with history, turns drawn live, local slash commands.

Only for a person at a terminal (see `ide_client.terminal.wanted`); pipes get the plain prompt.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections import deque
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.history import FileHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent

from ide_client.checkpoints import CheckpointCode, CheckpointError
from ide_client.client import IdeClient, Turn
from ide_client.errors import GatewayError, ToolFailure
from ide_client.recent_sessions import RecentSession, RecentSessions, skip_history
from ide_client.terminal.approve import TerminalApprovals
from ide_client.terminal.changes import ChangeRecorder
from ide_client.terminal.commands import Command, Invocation, Unknown, help_lines, parse_line
from ide_client.terminal.typeahead import TypeAhead
from ide_client.terminal.view import TerminalDisplay
from wire import ApprovalMode

PROMPT = "> "
APPROVAL_MODES = " | ".join(mode.value for mode in ApprovalMode)


class TerminalApp:
    """One person's conversation with the agent in `workspace`, through `client`.

    `client` must be created with `display=view` and `on_event=view.on_event`, answer tool
    calls with `changes`, so that every change is shown as a diff, and approvals with
    `approvals.ask`.
    """

    def __init__(
        self,
        client: IdeClient,
        view: TerminalDisplay,
        changes: ChangeRecorder,
        approvals: TerminalApprovals,
        workspace: Path,
        recent: RecentSessions,
        history_path: Path,
    ) -> None:
        self.client = client
        self.view = view
        self.changes = changes
        self.approvals = approvals
        self.workspace = workspace
        self.recent = recent
        self.history_path = history_path
        self.turns = 0
        self.interrupted = False

    async def run_prompt(self) -> None:
        """Prompt, run turns and commands until /quit, Ctrl-D, or Ctrl-C on an empty line."""
        async with self.client:
            await skip_history(self.client)
            self._remember()
            self.view.info(
                f"Session {self.client.session_id} in {self.workspace}. "
                "/help for commands, Ctrl-D quits."
            )
            prompt = self._prompt_session()
            queued: deque[str] = deque()
            draft = ""
            while (line := await self._next_line(prompt, queued, draft)) is not None:
                draft = ""
                parsed = parse_line(line)
                if isinstance(parsed, Invocation):
                    if not await self._command(parsed):
                        break
                elif isinstance(parsed, Unknown):
                    self.view.failure(f"unknown command /{parsed.name} (/help lists the commands)")
                elif parsed.strip():
                    draft = await self._send(parsed.strip("\n"), queued)

    async def _next_line(
        self, prompt: PromptSession[str], queued: deque[str], draft: str
    ) -> str | None:
        """The next message typed ahead during a turn, else one read at the prompt starting
        with `draft`; None: leave."""
        if queued:
            line = queued.popleft()
            self.view.info(f"{PROMPT}{line}")
            prompt.history.append_string(line)
            return line
        try:
            return await prompt.prompt_async(PROMPT, default=draft)
        except EOFError:
            return None

    async def _send(self, content: str, queued: deque[str]) -> str:
        """Run a turn; queue the lines typed meanwhile and return the unfinished one. When the
        gateway cannot take the message, say so and give the message back for the prompt."""
        try:
            typed = await self.run_turn(content)
        except GatewayError as exc:
            self.view.failure(f"{exc.message} (Enter sends the message again)")
            return content
        queued.extend(typed.lines)
        return typed.partial

    async def run_message(self, content: str) -> Turn:
        """One turn on a terminal: connect, run it (Ctrl-C cancels it), close."""
        async with self.client:
            await skip_history(self.client)
            self._remember()
            return await self._live_turn(content, self._type_ahead(show_queued=False))

    async def run_turn(self, content: str) -> TypeAhead:
        """Run one turn; what the user typed meanwhile comes back for the next prompt."""
        typed = self._type_ahead(show_queued=True)
        await self._live_turn(content, typed)
        return typed

    def _type_ahead(self, *, show_queued: bool) -> TypeAhead:
        """The keys of a turn: typed text shown on the spinner's (or question's) line."""
        shown = 0

        def on_keys() -> None:
            nonlocal shown
            if show_queued:
                for line in typed.lines[shown:]:
                    self.view.queued(line)
            shown = len(typed.lines)
            self.view.typed = typed.partial

        typed = TypeAhead(sys.stdin.fileno(), self._write, on_keys)
        return typed

    async def _live_turn(self, content: str, typed: TypeAhead) -> Turn:
        """The turn with keys read by `typed` (approval answers too); Ctrl-C cancels it, a
        second Ctrl-C quits."""
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()
        cancels: list[asyncio.Task[None]] = []

        def on_interrupt() -> None:
            self.interrupted = True
            if cancels and main is not None:
                main.cancel()
                return
            self.view.cancelling()
            cancels.append(loop.create_task(self.client.cancel()))

        self.interrupted = False
        loop.add_signal_handler(signal.SIGINT, on_interrupt)
        typed.start()
        self.approvals.typed = typed
        self.view.turn_started()
        try:
            turn = await self.client.run_turn(content)
        finally:
            self.approvals.typed = None
            typed.stop()
            self.view.stop()
            self.view.typed = ""
            loop.remove_signal_handler(signal.SIGINT)
        self.turns += 1
        self._remember()
        return turn

    async def _command(self, invocation: Invocation) -> bool:
        """Run a slash command; False: leave."""
        command = invocation.command
        if command is Command.QUIT:
            return False
        if command is Command.HELP:
            for line in help_lines():
                self.view.info(line)
        elif command is Command.STATUS:
            self._status()
        elif command is Command.DIFF:
            try:
                diff = await asyncio.to_thread(self.changes.workspace_diff)
            except ToolFailure as failure:
                self.view.failure(f"/diff: {failure.message} [{failure.code}]")
            else:
                self.view.show_diff(diff)
        elif command is Command.NEW:
            await self.client.close()
            self.client.session_id, self.client.last_seq = None, 0
            try:
                await self.client.connect()
            except GatewayError as exc:
                self.view.failure(f"/new: {exc.message} (the next message tries again)")
            else:
                self._remember()
                self.view.info(f"New session {self.client.session_id}.")
        elif command is Command.UNDO:
            await self._undo(invocation.argument)
        elif command is Command.APPROVAL:
            await self._approval(invocation.argument)
        return True

    async def _undo(self, argument: str) -> None:
        """`/undo [TURN] [--force]`: put the files back, say which, and that the agent knows."""
        words = argument.split()
        force = "--force" in words
        turns = [word for word in words if word != "--force"]
        if len(turns) > 1:
            self.view.failure("/undo takes one turn at most, e.g. /undo t3")
            return
        try:
            reverted = await self.client.undo(turns[0] if turns else None, force=force)
        except CheckpointError as exc:
            hint = (
                " (/undo --force overwrites them)"
                if exc.code is CheckpointCode.CHANGED_SINCE
                else ""
            )
            self.view.failure(f"/undo: {exc.message} [{exc.code}]{hint}")
            return
        except GatewayError as exc:
            self.view.failure(f"/undo: {exc.message}")
            return
        undone = ", ".join(reverted.turns)
        self.view.info(
            f"Undone turn{'s' if len(reverted.turns) > 1 else ''} {undone}: "
            f"{', '.join(reverted.paths)} back as before turn {reverted.turn_id}; "
            "the agent was told."
        )

    async def _approval(self, argument: str) -> None:
        """`/approval [MODE]`: show the session's approval mode, or change it."""
        if not argument:
            self.view.info(f"approval   {self.client.approval_mode} ({APPROVAL_MODES})")
            return
        try:
            mode = ApprovalMode(argument)
        except ValueError:
            self.view.failure(f"/approval: unknown mode {argument!r} (one of {APPROVAL_MODES})")
            return
        if mode is ApprovalMode.ASK and self.client.on_approval is None:
            self.view.failure("/approval ask: this terminal cannot ask")
            return
        try:
            await self.client.set_approval(mode)
        except GatewayError as exc:
            self.view.failure(f"/approval: {exc.message}")
            return
        self.view.info(f"Approval mode: {self.client.approval_mode}.")

    def _status(self) -> None:
        view = self.view
        view.info(f"session    {self.client.session_id} (event {self.client.last_seq})")
        view.info(f"gateway    {self.client.url}")
        view.info(f"workspace  {self.workspace}")
        view.info(f"approval   {self.client.approval_mode}")
        view.info(f"turns      {self.turns} in this run")
        view.info(f"tokens     {view.prompt_tokens:,} in, {view.completion_tokens:,} out")

    def _prompt_session(self) -> PromptSession[str]:
        self.history_path.parent.mkdir(parents=True, exist_ok=True)
        return PromptSession(history=FileHistory(str(self.history_path)), key_bindings=_keys())

    def _remember(self) -> None:
        if self.client.session_id is not None:
            session = RecentSession(self.client.session_id, self.client.last_seq)
            self.recent.remember(self.workspace, session)

    def _write(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()


def _keys() -> KeyBindings:
    """Alt-Enter adds a line; Ctrl-C clears the line, or leaves when it is empty."""
    keys = KeyBindings()

    @keys.add("escape", "enter")
    def _new_line(event: KeyPressEvent) -> None:
        event.current_buffer.insert_text("\n")

    @keys.add("c-c")
    def _clear_or_leave(event: KeyPressEvent) -> None:
        if event.current_buffer.text:
            event.current_buffer.reset()
        else:
            event.app.exit(result=None)

    return keys
