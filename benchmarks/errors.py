"""The benchmark's errors: each names what failed, with a `code`."""

from __future__ import annotations

from wire import AgentServiceError


class BenchError(AgentServiceError):
    """The benchmark cannot go on."""

    code = "bench_failed"


class StartFailed(BenchError):
    """A process under test did not start or answer."""

    code = "start_failed"


class TurnFailed(BenchError):
    """A path under test answered a turn with an error, or not in time."""

    code = "turn_failed"
