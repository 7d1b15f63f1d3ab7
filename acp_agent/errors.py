"""Codes of the tool errors the bridge itself reports to the model, beside the reference IDE's."""

from __future__ import annotations

from enum import StrEnum


class BridgeToolCode(StrEnum):
    """Why a tool call did not run through the editor."""

    DECLINED = "declined"
    UNSUPPORTED_BY_EDITOR = "unsupported_by_editor"
    EDITOR_FAILED = "editor_failed"
