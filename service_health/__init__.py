"""Waiting for a started service: the one poll every starter of processes uses.

The command line's stack, the ACP bridge's local stack, the benchmark and the
tests start services as child processes and wait here until each answers
`/healthz` with 200, failing at once when the child exits first.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
import urllib.request
from collections.abc import Callable
from functools import partial

from wire import AgentServiceError

__all__ = ["ServiceDidNotStart", "answers_healthy", "wait_healthy", "wait_until"]

POLL_INTERVAL_S = 0.05


class ServiceDidNotStart(AgentServiceError):
    """A started service exited (`returncode`) or did not become ready in time (None)."""

    code = "stack_failed"

    def __init__(self, message: str, returncode: int | None) -> None:
        super().__init__(message)
        self.returncode = returncode


def answers_healthy(url: str, timeout_s: float = 1.0) -> bool:
    """`url` answers 200 now."""
    with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=timeout_s) as response:
        return bool(response.status == 200)
    return False


def wait_until(
    ready: Callable[[], bool],
    timeout_s: float,
    process: subprocess.Popen[bytes] | None = None,
    name: str = "the service",
    what: str = "ready",
    where: str = "",
) -> None:
    """Poll `ready` until it holds; raise `ServiceDidNotStart` when `process` exits first or
    `timeout_s` runs out (the message says `name` did not become `what`, then `where`)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServiceDidNotStart(
                f"{name} exited with code {process.returncode} while starting", process.returncode
            )
        if ready():
            return
        time.sleep(POLL_INTERVAL_S)
    raise ServiceDidNotStart(f"{name} did not become {what} within {timeout_s:g} s{where}", None)


def wait_healthy(
    url: str,
    timeout_s: float = 20.0,
    process: subprocess.Popen[bytes] | None = None,
    name: str = "the service",
) -> None:
    """Poll `url` until it answers 200; see `wait_until`."""
    wait_until(partial(answers_healthy, url), timeout_s, process, name, "healthy", f" ({url})")
