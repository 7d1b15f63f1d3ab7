"""The internal link on NATS JetStream: subjects, buckets, headers and message framing.

Gateways and orchestrators that share a NATS server find each other by these
names alone; both sides import them from here so they can never disagree.

- `agent.hb.<node>`: an orchestrator's heartbeat (core NATS), every quarter lease TTL.
- `agent.node.<node>.open`: request; the first frames of an IDE connection until one of
  them opens or resumes a session there (`OpenRequest`, answered by `OpenReply`).
- `agent.node.<node>.conn.<conn>`: the connection's later client frames.
- `agent.gw.<gateway>.<conn>`: server frames for one IDE connection.
- `agent.gwhb.<gateway>`: a gateway's heartbeat (core NATS), every quarter of the TTL it
  announces; a node drops the connections of a gateway silent for that TTL.
- `agent.census`: request to every node; each answers how many sessions it holds for a
  token (`CensusRequest`/`CensusReply`), so a token's session cap holds cluster-wide.
- Stream `AGENT_LOG`, subject `agent.log.<session>`: the session's durable log.
- KV `agent_nodes` (TTL: the lease) and `agent_sessions` (which node owns a session).

Frames of one NATS message are joined by newlines (compact JSON has none). A text
longer than the server's largest payload goes out as numbered chunks. Server frames
are flow-controlled per connection (`ACK`, `RELAY_WINDOW`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Self

LOG_STREAM = "AGENT_LOG"
NODES_BUCKET = "agent_nodes"
SESSIONS_BUCKET = "agent_sessions"

# JetStream checks this against the stream sequence of the subject's last message.
EXPECTED_LAST_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"
MSG_ID = "Nats-Msg-Id"
# "<index>/<count>" on every chunk of a text sent in several messages; absent when whole.
CHUNK = "Agent-Chunk"
# On every message an orchestrator sends a gateway: the node it comes from (a gateway takes
# frames only from the node it is bound to or asking).
NODE = "Agent-Node"
# On the last message to one side of a connection: "<close code> <reason>".
CLOSE = "Agent-Close"
# From a gateway to the node of a connection: the bytes of server messages it has relayed
# to the IDE so far (a running total, so a lost one costs nothing).
ACK = "Agent-Ack"
# A node publishes a connection's frames while fewer bytes than this are unacknowledged, so
# one burst cannot pass what the server queues for a gateway (its max_pending, 64 MiB by
# default); the gateway acknowledges every ACK_EVERY bytes (less than the window, so a
# node never waits on a gateway that has relayed everything).
RELAY_WINDOW = 1024 * 1024
ACK_EVERY = 256 * 1024

WRONG_LAST_SEQUENCE = 10071
# Bytes of a NATS message kept free for headers when a text is cut into chunks.
HEADER_ROOM = 1024


def heartbeat_subject(node: str) -> str:
    """Where `node` says it is alive."""
    return f"agent.hb.{node}"


HEARTBEATS = "agent.hb.*"


CENSUS = "agent.census"


def open_subject(node: str) -> str:
    """Where `node` takes the first frames of a connection."""
    return f"agent.node.{node}.open"


def connection_subject(node: str, conn: str) -> str:
    """Where the later client frames of connection `conn` on `node` go."""
    return f"agent.node.{node}.conn.{conn}"


def connections_of(node: str) -> str:
    """Every connection subject of `node`, for its one subscription."""
    return f"agent.node.{node}.conn.*"


def gateway_subject(gateway: str, conn: str) -> str:
    """Where server frames for connection `conn` of `gateway` go."""
    return f"agent.gw.{gateway}.{conn}"


def gateway_of(reply_to: str) -> str | None:
    """The gateway a connection's server-frame subject belongs to, if it is one."""
    parts = reply_to.split(".")
    return parts[2] if len(parts) == 4 and parts[:2] == ["agent", "gw"] else None


def gateway_heartbeat_subject(gateway: str) -> str:
    """Where `gateway` says it is alive."""
    return f"agent.gwhb.{gateway}"


GATEWAY_HEARTBEATS = "agent.gwhb.*"


def log_subject(session_id: str) -> str:
    """The subject of one session's log."""
    return f"agent.log.{session_id}"


LOG_SUBJECTS = "agent.log.*"


def encode_close(code: int, reason: str) -> str:
    """The `CLOSE` header's value."""
    return f"{code} {reason}"


def decode_close(value: str) -> tuple[int, str]:
    """Code and reason from a `CLOSE` header."""
    code, _, reason = value.partition(" ")
    return int(code), reason


def chunks(data: bytes, limit: int) -> list[bytes]:
    """`data` in pieces of at most `limit` bytes (one piece when it fits)."""
    if len(data) <= limit:
        return [data]
    return [data[i : i + limit] for i in range(0, len(data), limit)]


def chunk_header(index: int, count: int) -> dict[str, str]:
    """Headers of piece `index` of `count` (none for a whole text)."""
    return {} if count == 1 else {CHUNK: f"{index}/{count}"}


class Reassembly:
    """Joins chunked texts again; a text whose chunks stop short is dropped."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def add(self, data: bytes, header: str | None) -> bytes | None:
        """The whole text once its last piece is in, else None."""
        if header is None:
            self._parts.clear()
            return data
        index, count = (int(part) for part in header.split("/", 1))
        if index == 0:
            self._parts = []
        elif len(self._parts) != index:
            self._parts.clear()
            return None
        self._parts.append(data)
        if index + 1 < count:
            return None
        whole = b"".join(self._parts)
        self._parts.clear()
        return whole


class JsonMessage:
    """A dataclass sent as one JSON object."""

    __slots__ = ()

    def encode(self) -> bytes:
        """JSON bytes."""
        return json.dumps(asdict(self)).encode()  # type: ignore[call-overload]

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """From JSON bytes; raises ValueError or TypeError when malformed."""
        return cls(**json.loads(data))


@dataclass(frozen=True, slots=True)
class CensusRequest(JsonMessage):
    """Asked of every node: how many sessions does `principal` hold there?"""

    principal: str
    node: str


@dataclass(frozen=True, slots=True)
class CensusReply(JsonMessage):
    """One node's answer to a `CensusRequest`."""

    node: str
    sessions: int


@dataclass(frozen=True, slots=True)
class OpenRequest(JsonMessage):
    """A connection's frame sent to a node before the connection is bound to a session."""

    principal: str
    reply_to: str
    conn: str
    frame: str


@dataclass(frozen=True, slots=True)
class OpenReply(JsonMessage):
    """What the node did with the frame.

    `bound`: the connection now belongs to a session on this node; send later frames
    to its connection subject. `redirect`: the session lives on that live node; send
    the frame there. `retry`: the owner may be gone but its lease has not run out yet.
    None of them: the frame was answered (a protocol error); route the next one afresh.
    """

    bound: bool = False
    redirect: str | None = None
    retry: bool = False
