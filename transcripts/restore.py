"""What an orchestrator needs to rebuild its recent sessions after a restart."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from orchestrator import CoreConfig, Event, check_version, decode_config, decode_event
from transcripts.store import INPUT, TranscriptStore


@dataclass(frozen=True, slots=True)
class RecordedSession:
    """One session's identity and every input its core was fed, in order."""

    session_id: str
    config: CoreConfig
    owner: str
    inputs: list[Event]
    reserved_seq: int = 0


def sessions_to_restore(path: str | os.PathLike[str], not_before: float) -> list[RecordedSession]:
    """Sessions of the transcript file with a row recorded at or after `not_before`.

    A session a restart may still bring back is one whose grace period has not
    run out; older ones are left to the record. No file means nothing to restore.
    """
    if not Path(path).exists():
        return []
    store = TranscriptStore.open(path)
    try:
        restorable = []
        for record in store.sessions():
            if store.last_recorded_at(record.session_id) < not_before:
                continue
            check_version(record.codec_version)
            inputs = [
                decode_event(row.payload)
                for row in store.events(record.session_id)
                if row.kind == INPUT
            ]
            restorable.append(
                RecordedSession(
                    session_id=record.session_id,
                    config=decode_config(record.config),
                    owner=str(record.meta.get("owner", "")),
                    inputs=inputs,
                    reserved_seq=store.reserved_seq(record.session_id),
                )
            )
        return restorable
    finally:
        store.close()
