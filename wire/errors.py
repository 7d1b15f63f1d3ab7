"""The root of every error the project raises on purpose.

Each package has its own middle layer under it (`TranscriptError`, `ProxyError`,
`IdeClientError`, ...), and every error carries a `code` a caller can act on.
Foreign exceptions (OSError, a library's own errors) are mapped to one of these
at the boundary where they are caught, or reach the command line's edge, which
reports an operator's mistake in one line.
"""

from __future__ import annotations

from wire.codes import ErrorCode


class AgentServiceError(Exception):
    """Root of the project's errors; `code` names what went wrong for a machine."""

    code: str = ErrorCode.INTERNAL
