"""The approval question at a terminal: the coloured diff, then `[y]es / [a]lways / [n]o`.

Asked one at a time (parallel calls wait their turn), and answered with the keys the turn's
type-ahead reads: the line typed while a question waits is its answer, not a next message.
"""

from __future__ import annotations

import asyncio

from ide_client.approvals import ApprovalAnswer, preview, read_answer
from ide_client.display import describe_call
from ide_client.terminal.typeahead import TypeAhead
from ide_client.terminal.view import TerminalDisplay
from ide_client.workspace import Workspace
from wire import ApprovalRequest, Decision


class TerminalApprovals:
    """The `on_approval` handler of the terminal; `typed` is the running turn's type-ahead."""

    def __init__(self, view: TerminalDisplay, workspace: Workspace) -> None:
        self.view = view
        self.workspace = workspace
        self.typed: TypeAhead | None = None
        self._one_at_a_time = asyncio.Lock()

    async def ask(self, request: ApprovalRequest) -> ApprovalAnswer:
        """Show the change and wait for the user's answer (cancelled: the call is moot)."""
        async with self._one_at_a_time:
            typed = self.typed
            if typed is None:
                return ApprovalAnswer(Decision.REJECT, "The IDE could not ask its user.")
            shown = await asyncio.to_thread(preview, self.workspace, request)
            self.view.approval_asked(describe_call(request.tool, request.arguments), shown)
            try:
                while (answer := read_answer(await typed.answer_next())) is None:
                    self.view.approval_unclear()
            finally:
                self.view.stop()
            self.view.approval_answered(answer)
            return answer
