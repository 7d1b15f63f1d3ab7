"""Typed errors of the reference IDE client, each with a code its caller can act on."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from wire import AgentServiceError, ToolErrorCode

ToolCode = ToolErrorCode
"""Codes an IDE tool reports in `tool_result.error.code` (see docs/ide-client.md)."""


class GatewayCode(StrEnum):
    """Why talking to the gateway failed."""

    INVALID_URL = "invalid_url"
    UNREACHABLE = "unreachable"
    UNAUTHORIZED = "unauthorized"
    REJECTED = "rejected"
    CONNECTION_LOST = "connection_lost"
    BAD_FRAME = "bad_frame"


class ReplayCode(StrEnum):
    """Why a live replay of a recorded session stopped."""

    DIVERGED = "replay_diverged"
    UNSUPPORTED = "replay_unsupported"


class IdeClientError(AgentServiceError):
    """Root of every error the IDE client raises; `code` says what went wrong."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ToolFailure(IdeClientError):
    """A tool did not run as asked; `code`, `message` and `details` go back in `tool_result`.

    `message` is written for the model; `details`, when set, says the same as JSON for IDEs.
    """

    code: ToolCode

    def __init__(self, code: ToolCode, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(code, message)
        self.details = details


class GatewayError(IdeClientError):
    """The gateway could not be reached, refused the client, or broke the protocol."""

    code: str


class ReplayError(IdeClientError):
    """A live replay cannot run this recording, or the live session differs from it."""

    code: ReplayCode

    def __init__(self, code: ReplayCode, message: str) -> None:
        super().__init__(code, message)
