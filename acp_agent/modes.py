"""Approval modes of a session: whether an edit asks the user, goes ahead, or is refused.

The service has no approval modes of its own yet, so the bridge keeps them, per ACP session.
`session/set_mode` switches them; "allow always" in a permission dialog is remembered for the
rest of the session, whatever the mode.
"""

from __future__ import annotations

from enum import StrEnum

from acp.schema import SessionMode, SessionModeState


class ApprovalMode(StrEnum):
    """The modes an editor can pick with `session/set_mode`."""

    ASK = "ask"
    AUTO_EDIT = "auto-edit"
    READ_ONLY = "read-only"


class EditDecision(StrEnum):
    """What happens to one edit before it is written."""

    ASK = "ask"
    ALLOW = "allow"
    REFUSE = "refuse"


_DESCRIPTIONS = {
    ApprovalMode.ASK: ("Ask", "Every edit asks for permission, showing its diff."),
    ApprovalMode.AUTO_EDIT: ("Auto-edit", "Edits are written without asking."),
    ApprovalMode.READ_ONLY: ("Read-only", "Edits are refused; the agent only reads."),
}


class EditPolicy:
    """One session's mode and what the user allowed for good."""

    def __init__(self, mode: ApprovalMode = ApprovalMode.ASK) -> None:
        self.mode = mode
        self.always_allowed = False

    def decide(self) -> EditDecision:
        """The fate of the next edit."""
        if self.mode is ApprovalMode.READ_ONLY:
            return EditDecision.REFUSE
        if self.mode is ApprovalMode.AUTO_EDIT or self.always_allowed:
            return EditDecision.ALLOW
        return EditDecision.ASK

    def mode_state(self) -> SessionModeState:
        """The modes as `session/new` and `session/load` announce them."""
        return SessionModeState(
            current_mode_id=self.mode.value,
            available_modes=[
                SessionMode(id=mode.value, name=name, description=description)
                for mode, (name, description) in _DESCRIPTIONS.items()
            ],
        )
