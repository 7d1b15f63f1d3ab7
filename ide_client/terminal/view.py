"""What a person at a terminal sees of a turn, drawn with rich.

A spinner with the elapsed time and "Ctrl-C to cancel" while the model thinks or a tool runs;
the agent's text as it streams; one line per tool call, with the coloured diff of every change;
each error once, in red; a footer per turn with its outcome, time and tokens. A write call
that waits for approval shows what it would change and the question (the change is not shown
again once the user allowed it).
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from ide_client.approvals import QUESTION, ApprovalAnswer, Preview
from ide_client.display import describe_call, repeats_tool_failure, turn_outcome
from ide_client.terminal.changes import ChangeRecorder
from wire import (
    AgentMessage,
    ApprovalSource,
    Decision,
    Error,
    ServerMessage,
    SessionState,
    StateChanged,
    ToolCall,
    ToolResult,
)

MAX_DIFF_LINES = 200
OUTCOME_STYLES = {"done": "green", "cancelled": "yellow", "refused": "red", "error": "red"}


class TerminalDisplay:
    """A `Display` for a terminal. Feed it every numbered event too (`on_event`), so it knows
    when the model or a tool keeps the user waiting, and the turn's token usage."""

    def __init__(self, console: Console, changes: ChangeRecorder | None = None) -> None:
        self.console = console
        self.changes = changes
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self._live: Live | None = None
        self._at_line_start = True
        self._failed_calls: set[str] = set()
        self._turn_started = time.monotonic()
        self._turn_usage: tuple[int, int] | None = None
        self._changed = False
        self.typed = ""

    # ---- the turn's lifecycle, from the terminal app ---------------------------------------

    def turn_started(self) -> None:
        """A message was sent: wait for the model."""
        self._turn_started = time.monotonic()
        self._turn_usage = None
        self._changed = False
        self._failed_calls.clear()
        self._wait("thinking")

    def stop(self) -> None:
        """Take the spinner off the screen (before a prompt, or on the way out)."""
        if self._live is not None:
            self._live.stop()
            self._live = None

    def cancelling(self) -> None:
        """Ctrl-C was pressed during a turn and a `cancel` sent."""
        self._wait("cancelling")

    def queued(self, text: str) -> None:
        """A message typed during the turn: it is sent when the turn ends."""
        self._print(Text.assemble(("queued: ", "dim"), (_one_line(text), "dim italic")))

    def on_event(self, frame: ServerMessage) -> None:
        """Every numbered event, before the client acts on it."""
        if isinstance(frame, ToolCall):
            self._wait(f"running {describe_call(frame.tool, frame.arguments)}")
        elif isinstance(frame, AgentMessage):
            self._turn_usage = (frame.usage.prompt_tokens, frame.usage.completion_tokens)
        elif (
            isinstance(frame, StateChanged)
            and frame.state is SessionState.STREAMING
            and frame.previous is SessionState.AWAITING_TOOL
        ):
            self._wait("thinking")

    # ---- the Display interface, from the client --------------------------------------------

    def agent_text(self, text: str) -> None:
        """A streamed piece of the agent's answer, shown at once."""
        self.stop()
        self.console.print(text, end="", markup=False, highlight=False, soft_wrap=True)
        if text:
            self._at_line_start = text.endswith("\n")

    def tool_outcome(self, call: ToolCall, result: ToolResult) -> None:
        """`✓ read_file src/auth.js` (dim) or `✗ read_file src/x: not_found: …` (red), then the
        coloured diff of the change the call made."""
        what = describe_call(call.tool, call.arguments)
        if not result.ok:
            self._failed_calls.add(call.call_id)
            error = result.error
            why = f"{error.code}: {error.message}" if error else "failed"
            self._print(Text(f"✗ {what}: {why}", style="bold red"))
        else:
            self._print(Text(f"✓ {what}", style="dim"))
            if call.tool == "git.diff" and not self._changed:
                self.show_diff(str((result.output or {}).get("diff", "")))
            diff = self.changes.diff_for(call.call_id) if self.changes else None
            if diff is not None and call.approval != ApprovalSource.USER:
                self._changed = True
                self.show_diff(diff)
        self._wait("waiting for the model")

    def error(self, error: Error) -> None:
        """An error, in red, once: a tool failure already shown on its line is not repeated."""
        if repeats_tool_failure(error, self._failed_calls):
            return
        fatal = " (fatal)" if error.fatal else ""
        self._print(Text(f"error{fatal}: {error.message} [{error.source}/{error.code}]", "red"))

    def turn_ended(self, state: SessionState | None) -> None:
        """The footer: `done · 2.1s · 812 tokens in, 64 out`, coloured by outcome."""
        self.stop()
        outcome = turn_outcome(state)
        parts = [outcome, f"{time.monotonic() - self._turn_started:.1f}s"]
        if self._turn_usage is not None:
            prompt, completion = self._turn_usage
            self.prompt_tokens += prompt
            self.completion_tokens += completion
            parts.append(f"{prompt:,} tokens in, {completion:,} out")
        style = OUTCOME_STYLES.get(outcome, "red")
        self._print(Text(" · ".join(parts), style=f"dim {style}"))

    def note(self, text: str) -> None:
        """A message from the client itself (connection, resume)."""
        self._print(Text(text, style="dim yellow"))

    # ---- shared with the slash commands ----------------------------------------------------

    def show_diff(self, diff: str) -> None:
        """A unified diff, coloured line by line; long ones are cut (`/diff` shows all)."""
        lines = diff.splitlines() or ["(no changes)"]
        for line in lines[:MAX_DIFF_LINES]:
            self._print(Text(line, style=_diff_style(line)))
        if len(lines) > MAX_DIFF_LINES:
            self._print(Text(f"… {len(lines) - MAX_DIFF_LINES} more lines", style="dim"))

    def info(self, text: str) -> None:
        """A line from a slash command."""
        self._print(Text(text))

    def failure(self, text: str) -> None:
        """Something the user asked for locally did not work."""
        self._print(Text(text, style="red"))

    # ---- approvals --------------------------------------------------------------------------

    def approval_asked(self, what: str, shown: Preview) -> None:
        """A write call waits for the user: what it would change, then the question line."""
        self._print(Text(f"? {what} wants to {shown.summary}", style="bold yellow"))
        if shown.diff is not None:
            self.show_diff(shown.diff)
        self._show(_Question(self))

    def approval_unclear(self) -> None:
        """The answer was none of y, a, n."""
        self._print(Text("Answer y, a or n (n may be followed by a reason).", style="yellow"))

    def approval_answered(self, answer: ApprovalAnswer) -> None:
        """The user's answer, as one line, once the question is off the screen."""
        self.stop()
        if answer.decision is Decision.REJECT:
            reason = f": {answer.message}" if answer.message else ""
            self._print(Text(f"rejected{reason}", style="red"))
        elif answer.decision is Decision.ALLOW_ONCE:
            self._print(Text("allowed", style="green"))
        else:
            self._print(Text("allowed, and not asked again for this tool", style="green"))

    # ---- drawing ---------------------------------------------------------------------------

    def _wait(self, label: str) -> None:
        """Show the spinner with `label`, from now (replacing the one shown)."""
        self._show(_Waiting(label, time.monotonic(), self))

    def _show(self, waiting: _Waiting | _Question) -> None:
        self.stop()
        self._end_line()
        self._live = Live(
            waiting,
            console=self.console,
            refresh_per_second=8,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()

    def _print(self, text: Text) -> None:
        waiting = self._live.renderable if self._live is not None else None
        self.stop()
        self._end_line()
        self.console.print(text, highlight=False, soft_wrap=True)
        if isinstance(waiting, _Waiting | _Question):
            self._show(waiting)

    def _end_line(self) -> None:
        if not self._at_line_start:
            self.console.print()
            self._at_line_start = True


class _Waiting:
    """The spinner's line: what we wait for, for how long, how to stop waiting, and what the
    user has typed ahead meanwhile."""

    def __init__(self, label: str, since: float, view: TerminalDisplay) -> None:
        self.label = label
        self.since = since
        self.view = view
        self.spinner = Spinner("dots", style="cyan")

    def __rich__(self) -> Spinner:
        elapsed = time.monotonic() - self.since
        text = Text(f"{self.label}… {elapsed:.0f}s · Ctrl-C to cancel", style="dim")
        if self.view.typed:
            text.append(f"  typed: {_one_line(self.view.typed)}", style="italic")
        self.spinner.update(text=text)
        return self.spinner


class _Question:
    """The approval question's line, with what the user has typed so far."""

    def __init__(self, view: TerminalDisplay) -> None:
        self.view = view

    def __rich__(self) -> Text:
        return Text.assemble((f"Allow? {QUESTION}: ", "bold yellow"), self.view.typed)


def _diff_style(line: str) -> str:
    if line.startswith(("+++", "---", "diff ", "index ")):
        return "bold"
    if line.startswith("+"):
        return "green"
    if line.startswith("-"):
        return "red"
    if line.startswith("@@"):
        return "cyan"
    return ""


def _one_line(text: str) -> str:
    lines = text.splitlines()
    return lines[0] + (f" (+{len(lines) - 1} lines)" if len(lines) > 1 else "") if lines else ""
