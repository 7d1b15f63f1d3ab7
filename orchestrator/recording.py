"""Where the runtime reports what went into and came out of each session core.

The runtime calls a `Recorder` for every event it feeds a core and every
command the core returns, on the hot path: implementations must only buffer
there and do their I/O in `flush`, which the runtime calls at step boundaries
(a turn's state change) and at shutdown.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from orchestrator.commands import Command
from orchestrator.core import CoreConfig
from orchestrator.events import Event


class Recorder(Protocol):
    """Receives a session's inputs and outputs in the order they happened."""

    @property
    def problem(self) -> str | None:
        """Why the store cannot write now (None while it can): health reports it."""

    def session_started(
        self, session_id: str, config: CoreConfig, model: str, owner: str = ""
    ) -> None:
        """A new session exists; `config` and `model` are what replay needs to rebuild it,
        `owner` (a digest of the IDE token, never the token) who may resume it."""

    def session_resumed(self, session_id: str) -> None:
        """A session already in the store was rebuilt; its next rows follow the stored ones."""

    def reserve_seq(self, session_id: str, up_to: int) -> None:
        """Durably note, before returning, that the session may send events numbered up to
        `up_to`: a session rebuilt after a crash numbers on after it. Never raises."""

    def settle_seq(self, session_id: str, last_seq: int) -> None:
        """Clean shutdown: the session sent exactly up to `last_seq`; written with the next
        flush, so a clean restart numbers on without a skip."""

    def record_input(self, session_id: str, event: Event) -> None:
        """An event is about to be fed to the session's core."""

    def record_outputs(self, session_id: str, commands: list[Command]) -> None:
        """The commands the core returned for the last input."""

    def flush(self) -> None:
        """Write what is buffered; called at step boundaries and at shutdown."""

    def close(self) -> None:
        """Flush and release the store."""


class NullRecorder:
    """Records nothing: transcripts are off."""

    problem: str | None = None

    def session_started(
        self, session_id: str, config: CoreConfig, model: str, owner: str = ""
    ) -> None:
        """Nothing to keep."""

    def session_resumed(self, session_id: str) -> None:
        """Nothing to keep."""

    def reserve_seq(self, session_id: str, up_to: int) -> None:
        """Nothing to keep: without a transcript no session is rebuilt."""

    def settle_seq(self, session_id: str, last_seq: int) -> None:
        """Nothing to keep."""

    def record_input(self, session_id: str, event: Event) -> None:
        """Nothing to keep."""

    def record_outputs(self, session_id: str, commands: list[Command]) -> None:
        """Nothing to keep."""

    def flush(self) -> None:
        """Nothing to write."""

    def close(self) -> None:
        """Nothing to release."""


def flushed_in_background(recorder: Recorder) -> Recorder:
    """`recorder` with its flushes in a worker thread; a `NullRecorder` as it is, since waking
    a thread (and handing it the GIL) at every step boundary to write nothing would sit in
    front of every model request."""
    if isinstance(recorder, NullRecorder):
        return recorder
    return BackgroundFlushRecorder(recorder)


class BackgroundFlushRecorder:
    """Runs another recorder's `flush` in one worker thread, so a step's write never stalls
    the event loop; flushes stay in order, and `close` waits for the last one."""

    def __init__(self, inner: Recorder) -> None:
        self._inner = inner
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="transcript-flush")
        self._pending: Future[None] | None = None

    @property
    def problem(self) -> str | None:
        """The inner recorder's."""
        return self._inner.problem

    def session_started(
        self, session_id: str, config: CoreConfig, model: str, owner: str = ""
    ) -> None:
        """Passed on as is."""
        self._inner.session_started(session_id, config, model, owner)

    def session_resumed(self, session_id: str) -> None:
        """Passed on as is."""
        self._inner.session_resumed(session_id)

    def reserve_seq(self, session_id: str, up_to: int) -> None:
        """Passed on as is: it must be written before the event goes out."""
        self._inner.reserve_seq(session_id, up_to)

    def settle_seq(self, session_id: str, last_seq: int) -> None:
        """Passed on as is: the inner recorder only buffers."""
        self._inner.settle_seq(session_id, last_seq)

    def record_input(self, session_id: str, event: Event) -> None:
        """Passed on as is: the inner recorder only buffers."""
        self._inner.record_input(session_id, event)

    def record_outputs(self, session_id: str, commands: list[Command]) -> None:
        """Passed on as is: the inner recorder only buffers."""
        self._inner.record_outputs(session_id, commands)

    def flush(self) -> None:
        """Queue a flush unless one is already queued and not started."""
        if self._pending is None or self._pending.running() or self._pending.done():
            self._pending = self._worker.submit(self._inner.flush)

    def close(self) -> None:
        """Wait for queued flushes, then flush and close the inner recorder."""
        self._worker.shutdown(wait=True)
        self._inner.close()
