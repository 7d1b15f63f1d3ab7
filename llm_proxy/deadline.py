"""A deadline for the current task that moves with every chunk of a stream at the cost of a float.

`asyncio.timeout(...).reschedule()` cancels its timer and schedules a new one
on every call, which a relay pays once per chunk. Here moving the deadline only
stores the new time; the one timer, when it fires, looks at the deadline then
and sleeps again until it if it has moved. A stream that keeps flowing pays for
a timer about once per timeout period instead of once per chunk.
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class Deadline:
    """Cancels the current task when the deadline passes; the `with` block then raises TimeoutError.

    Used as a `with` block around the work it bounds, in the task doing that work,
    like `asyncio.timeout`. `move(None)` lifts it (while the task waits on its
    caller, say) until the next `move(seconds)`.
    """

    def __init__(self, seconds: float) -> None:
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a Deadline bounds the work of a task")
        self._task = task
        self._when: float | None = self._loop.time() + seconds
        self._timer: asyncio.TimerHandle | None = None
        self._cancelling = 0
        self._expired = False

    def move(self, seconds: float | None) -> None:
        """The deadline is now `seconds` from now; None: no deadline until the next move."""
        if seconds is None or self._expired:
            self._when = None
            return
        self._when = when = self._loop.time() + seconds
        if self._timer is None or when < self._timer.when():
            self._arm(when)

    def __enter__(self) -> Deadline:
        self._cancelling = self._task.cancelling()
        if self._when is not None:
            self._arm(self._when)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._when = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if (
            self._expired
            and self._task.uncancel() <= self._cancelling
            and exc_type is asyncio.CancelledError
        ):
            raise TimeoutError from exc

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._when is None:
            return  # lifted: the next move arms the timer again
        if self._loop.time() < self._when:
            self._timer = self._loop.call_at(self._when, self._on_timer)
            return
        self._expired = True
        self._task.cancel()
