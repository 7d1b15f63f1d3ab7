"""Each session's durable log in JetStream: the `Recorder` of an orchestrator on a broker.

A session's subject `agent.log.<session>` holds, in order, its start (config, model,
owner), every input its core was fed, and a claim record each time a node takes it
over. Outputs are not stored: replaying the inputs gives them again, exactly.

Fencing: every message is published with `Nats-Expected-Last-Subject-Sequence` set
to the stream sequence of the subject's last message as this writer knows it. A
node that takes a session over appends its claim after the last message it read;
from then on, the old owner's next write is refused (`wrong last sequence`), and
the old owner gives the session up. So the log stays one line, written by one
owner at a time, whatever the clocks or the network do.

Durability before delivery: a connection sends an IDE frame only once the records
appended before it are in the stream (`appended` and `durable`). Every event an
IDE saw can therefore be rebuilt: after a crash, seq continues with no gap and no
number twice.

Records are written by one task per session, as many as are waiting in one
message (a text over the server's largest payload goes in chunks).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, NotFoundError

from orchestrator.codec import decode_config, decode_event, encode, encode_config
from orchestrator.commands import Command
from orchestrator.core import CoreConfig
from orchestrator.events import Event
from wire import AgentServiceError, ErrorCode
from wire.broker import (
    CHUNK,
    EXPECTED_LAST_SUBJECT_SEQ,
    HEADER_ROOM,
    LOG_STREAM,
    LOG_SUBJECTS,
    MSG_ID,
    WRONG_LAST_SEQUENCE,
    Reassembly,
    chunk_header,
    chunks,
    log_subject,
)

log = logging.getLogger(__name__)

START, INPUT, CLAIM = "S", "I", "C"
RETRY_S = 0.2


class ClaimContested(AgentServiceError):
    """Someone wrote to the session's log while this node was claiming it."""

    code = ErrorCode.ORCHESTRATOR_UNAVAILABLE


@dataclass(frozen=True, slots=True)
class LoggedSession:
    """What a node needs to rebuild a session it claimed."""

    session_id: str
    config: CoreConfig
    owner: str
    inputs: list[Event]


@dataclass(eq=False)
class _Writer:
    """One session's records on their way into the stream."""

    session_id: str
    expected: int
    announce: bool
    records: list[str] = field(default_factory=list)
    appended: int = 0
    durable: int = 0
    lost: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    waiters: list[tuple[int, asyncio.Future[bool]]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def append(self, record: str) -> None:
        self.records.append(record)
        self.appended += 1
        self.wake.set()

    def settle(self) -> None:
        """Wake the frames waiting for records that are now durable (or never will be)."""
        waiting = []
        for target, future in self.waiters:
            if self.lost or self.durable >= target:
                if not future.done():
                    future.set_result(not self.lost)
            else:
                waiting.append((target, future))
        self.waiters = waiting


async def ensure_log_stream(js: JetStreamContext, max_age_s: float) -> None:
    """Create the log stream unless it exists (every node calls this at start)."""
    try:
        await js.stream_info(LOG_STREAM)
    except NotFoundError:
        await js.add_stream(
            StreamConfig(
                name=LOG_STREAM,
                subjects=[LOG_SUBJECTS],
                storage=StorageType.FILE,
                max_age=max_age_s,
                duplicate_window=120.0,
            )
        )


class SessionLog:
    """The Recorder that writes each session's inputs to its JetStream subject."""

    def __init__(
        self,
        js: JetStreamContext,
        node: str,
        max_payload: int,
        announce: Callable[[str], Awaitable[None]],
        may_write: Callable[[], bool],
    ) -> None:
        """`announce(session)` records this node as the session's owner once its log holds
        this node's first write; `may_write()` is false while this node's lease is in doubt
        (writes wait then)."""
        self._js = js
        self._node = node
        self._chunk = max(max_payload - HEADER_ROOM, 4096)
        self._announce = announce
        self._may_write = may_write
        self._writers: dict[str, _Writer] = {}
        self.on_lost: Callable[[str], None] = lambda session_id: None
        self.problem: str | None = None

    # ---- Recorder ----------------------------------------------------------------------

    def session_started(
        self, session_id: str, config: CoreConfig, model: str, owner: str = ""
    ) -> None:
        """A new session: its log starts here; the subject must be empty."""
        writer = self._start_writer(session_id, expected=0, announce=True)
        writer.append(
            START
            + json.dumps(
                {"config": encode_config(config), "model": model, "owner": owner, "at": time.time()}
            )
        )

    def session_resumed(self, session_id: str) -> None:
        """Nothing to note: the claim already opened the session's next records."""

    def reserve_seq(self, session_id: str, up_to: int) -> None:
        """Nothing to reserve: an IDE only ever sees events whose inputs are durable."""

    def settle_seq(self, session_id: str, last_seq: int) -> None:
        """Nothing to settle: the log's inputs give the exact last seq."""

    def record_input(self, session_id: str, event: Event) -> None:
        """Queue one input for the session's log."""
        writer = self._writers.get(session_id)
        if writer is not None and not writer.lost:
            writer.append(INPUT + encode(event))

    def record_outputs(self, session_id: str, commands: list[Command]) -> None:
        """Not stored: replaying the inputs gives the outputs again."""

    def flush(self) -> None:
        """Nothing to do: each session's writer publishes as soon as records wait."""

    def close(self) -> None:
        """Nothing to release: `drain` is the asynchronous end."""

    # ---- delivery watermarks -----------------------------------------------------------

    def appended(self, session_id: str) -> int:
        """How many records the session has queued so far."""
        writer = self._writers.get(session_id)
        return writer.appended if writer is not None else 0

    async def durable(self, session_id: str, count: int) -> bool:
        """Wait until the session's first `count` records are in the stream; False when
        this node lost the session (what depends on them must not be sent)."""
        writer = self._writers.get(session_id)
        if writer is None or writer.lost:
            return writer is None
        if writer.durable >= count:
            return True
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        writer.waiters.append((count, future))
        return await future

    async def drain(self, timeout_s: float) -> None:
        """Shutdown: wait up to `timeout_s` for every queued record to be written."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while any(w.durable < w.appended and not w.lost for w in self._writers.values()):
            if asyncio.get_running_loop().time() > deadline:
                log.warning("session log records left unwritten at shutdown")
                break
            await asyncio.sleep(0.02)
        for session_id in list(self._writers):
            self.forget(session_id)

    def forget(self, session_id: str) -> None:
        """The session is freed here: stop its writer."""
        writer = self._writers.pop(session_id, None)
        if writer is not None:
            writer.lost = True
            writer.settle()
            if writer.task is not None:
                writer.task.cancel()

    # ---- taking a session over ---------------------------------------------------------

    async def claim(self, session_id: str, not_before: float) -> LoggedSession | None:
        """Read the session's log and append this node's claim after its last message.

        None when there is nothing to take: no log, or no record since `not_before` (the
        session's grace period ran out). Raises `ClaimContested` when another writer got
        in first; from the claim on, only this node's writes are accepted.
        """
        texts, last_seq, last_at = await self._read(session_id)
        logged = _parse(session_id, texts)
        if logged is None or last_at < not_before:
            return None
        writer = _Writer(session_id, expected=last_seq, announce=True)
        claim = CLAIM + json.dumps({"node": self._node, "at": time.time()})
        if not await self._publish(writer, [claim]):
            raise ClaimContested(f"session {session_id} was written to while it was claimed")
        await self._announce(session_id)
        writer.announce = False
        self.forget(session_id)
        self._writers[session_id] = writer
        writer.task = asyncio.get_running_loop().create_task(self._run(writer))
        log.info("session claimed", extra={"session_id": session_id, "log_seq": writer.expected})
        return logged

    async def _read(self, session_id: str) -> tuple[list[str], int, float]:
        """Every record of the session's log, the stream sequence of its last message and
        when that was written (0 and 0 for a subject with nothing on it)."""
        subject = log_subject(session_id)
        try:
            last = await self._js.get_last_msg(LOG_STREAM, subject)
        except NotFoundError:
            return [], 0, 0.0
        last_seq = last.seq or 0
        texts: list[str] = []
        reassembly = Reassembly()
        subscription = await self._js.subscribe(
            subject, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
        )
        last_at = 0.0
        try:
            while True:
                message = await subscription.next_msg(timeout=10)
                whole = reassembly.add(message.data, (message.headers or {}).get(CHUNK))
                if whole is not None:
                    texts.extend(whole.decode().split("\n"))
                metadata = message.metadata
                if metadata.sequence.stream >= last_seq:
                    if metadata.timestamp is not None:
                        last_at = metadata.timestamp.timestamp()
                    break
        finally:
            with contextlib.suppress(NatsError):
                await subscription.unsubscribe()
        return texts, last_seq, last_at

    # ---- writing -----------------------------------------------------------------------

    def _start_writer(self, session_id: str, expected: int, announce: bool) -> _Writer:
        writer = _Writer(session_id, expected=expected, announce=announce)
        self._writers[session_id] = writer
        writer.task = asyncio.get_running_loop().create_task(self._run(writer))
        return writer

    async def _run(self, writer: _Writer) -> None:
        try:
            await self._write_records(writer)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("session log writer failed", extra={"session_id": writer.session_id})
            self._give_up(writer)

    def _give_up(self, writer: _Writer) -> None:
        """Nothing more is written for the session here: free it (its IDE resumes elsewhere)."""
        writer.lost = True
        writer.settle()
        self._writers.pop(writer.session_id, None)
        self.on_lost(writer.session_id)

    async def _write_records(self, writer: _Writer) -> None:
        while not writer.lost:
            await writer.wake.wait()
            writer.wake.clear()
            while writer.records and not writer.lost:
                batch, writer.records = writer.records, []
                if not self._may_write():
                    log.warning("session log waits for this node's lease")
                    while not self._may_write():
                        await asyncio.sleep(0.02)
                if not await self._publish(writer, batch):
                    log.warning(
                        "session taken over by another node",
                        extra={"session_id": writer.session_id},
                    )
                    self._give_up(writer)
                    return
                if writer.announce:
                    await self._announce(writer.session_id)
                    writer.announce = False
                writer.durable += len(batch)
                writer.settle()

    async def _publish(self, writer: _Writer, records: list[str]) -> bool:
        """Append `records` after the writer's last known message; False when fenced off."""
        subject = log_subject(writer.session_id)
        pieces = chunks("\n".join(records).encode(), self._chunk)
        for index, piece in enumerate(pieces):
            message_id = f"{writer.session_id}.{self._node}.{writer.expected}"
            headers = {
                EXPECTED_LAST_SUBJECT_SEQ: str(writer.expected),
                MSG_ID: message_id,
                **chunk_header(index, len(pieces)),
            }
            while True:
                try:
                    ack = await self._js.publish(subject, piece, timeout=5, headers=headers)
                    writer.expected = ack.seq
                    self.problem = None
                    break
                except APIError as exc:
                    if exc.err_code != WRONG_LAST_SEQUENCE:
                        self._retrying(exc)
                        await asyncio.sleep(RETRY_S)
                        continue
                    landed = await self._landed(subject, message_id)
                    if landed is None:
                        return False
                    writer.expected = landed
                    break
                except (NatsError, TimeoutError) as exc:
                    self._retrying(exc)
                    await asyncio.sleep(RETRY_S)
        return True

    async def _landed(self, subject: str, message_id: str) -> int | None:
        """After a refused write: the subject's last message is ours when an earlier try
        landed but its answer was lost; its sequence then, else None (fenced off)."""
        while True:
            try:
                last = await self._js.get_last_msg(LOG_STREAM, subject)
            except NotFoundError:
                return None
            except (NatsError, TimeoutError) as exc:
                self._retrying(exc)
                await asyncio.sleep(RETRY_S)
                continue
            return (last.seq or 0) if (last.headers or {}).get(MSG_ID) == message_id else None

    def _retrying(self, exc: BaseException) -> None:
        self.problem = f"the session log cannot be written: {exc}"
        log.warning("session log write failed, retrying", extra={"error": str(exc)})


def _parse(session_id: str, texts: list[str]) -> LoggedSession | None:
    """The session a log's records describe; None without its start record."""
    start: dict[str, str] | None = None
    inputs: list[Event] = []
    for text in texts:
        kind, body = text[:1], text[1:]
        if kind == START:
            start = json.loads(body)
        elif kind == INPUT:
            inputs.append(decode_event(body))
    if start is None:
        return None
    return LoggedSession(
        session_id=session_id,
        config=decode_config(start["config"]),
        owner=start.get("owner", ""),
        inputs=inputs,
    )
