"""Where the IDE keeps what it remembers between runs: the last session of each workspace.

Kept in the user's state directory (`$XDG_STATE_HOME/agent-service`, by default
`~/.local/state/agent-service`), not in the workspace, so that the agent's `git diff` never shows
it. `ide-sessions.json` maps a workspace's real path to its last session id and the last event
seq the client saw, for `--continue`; `ide-history` is the prompt's line history.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ide_client.client import IdeClient

SESSIONS_FILE = "ide-sessions.json"
HISTORY_FILE = "ide-history"


def state_dir() -> Path:
    """The user's state directory for agent-service (not created here)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "agent-service"


@dataclass(frozen=True)
class RecentSession:
    """The last session a workspace used, and how far the client had read it."""

    session_id: str
    last_seq: int


class RecentSessions:
    """The last session of each workspace, in one small JSON file; a damaged file is ignored."""

    def __init__(self, directory: Path | None = None) -> None:
        self.path = (directory or state_dir()) / SESSIONS_FILE

    def last(self, workspace: Path) -> RecentSession | None:
        """The session to continue in `workspace`, if one was remembered."""
        entry = self._read().get(_key(workspace))
        if not isinstance(entry, dict) or not isinstance(entry.get("session_id"), str):
            return None
        seq = entry.get("last_seq")
        return RecentSession(entry["session_id"], seq if isinstance(seq, int) else 0)

    def find(self, session_id: str) -> RecentSession | None:
        """What is remembered of `session_id`, whichever workspace used it."""
        for entry in self._read().values():
            if isinstance(entry, dict) and entry.get("session_id") == session_id:
                seq = entry.get("last_seq")
                return RecentSession(session_id, seq if isinstance(seq, int) else 0)
        return None

    def remember(self, workspace: Path, session: RecentSession) -> None:
        """Record `session` as the one `--continue` picks in `workspace` (best effort)."""
        entries = self._read()
        entries[_key(workspace)] = {"session_id": session.session_id, "last_seq": session.last_seq}
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_suffix(".tmp")
            partial.write_text(json.dumps(entries, indent=1, sort_keys=True))
            partial.replace(self.path)

    def _read(self) -> dict[str, object]:
        try:
            entries = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return entries if isinstance(entries, dict) else {}


def _key(workspace: Path) -> str:
    return str(workspace.resolve())


async def skip_history(client: IdeClient) -> None:
    """After resuming an earlier run's session, start after its last event.

    The gateway replays every event after the `last_seq` of the hello; an earlier run's turns
    must not be replayed (the new turn would end on the old turn's `done`, and old tool calls
    would run again). So when the session has events this client has not seen, it says hello
    again from the session's last event.
    """
    session = client.session
    if session is not None and session.resumed and session.last_seq > client.last_seq:
        await client.close()
        client.last_seq = session.last_seq
        await client.connect()
