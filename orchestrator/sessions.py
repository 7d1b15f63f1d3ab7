"""The orchestrator's live sessions: create, find, resume, and free them after a grace period."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.core import CoreConfig
from orchestrator.events import Event
from orchestrator.history import DEFAULT_MAX_CHARS
from orchestrator.llm_client import LlmClient
from orchestrator.recording import Recorder
from orchestrator.runtime import Attachment, SessionRuntime
from wire import (
    FEATURE_APPROVALS,
    FEATURES,
    AgentServiceError,
    ApprovalMode,
    Capabilities,
    ErrorCode,
    offered_tools,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """How long a session outlives its connection, and how many there may be."""

    grace_period_s: float = 600.0
    max_sessions: int = 10_000
    max_sessions_per_principal: int = 100
    history_chars: int = DEFAULT_MAX_CHARS


def session_config(
    base: CoreConfig, capabilities: Capabilities | None, approval: str | None = None
) -> CoreConfig:
    """The orchestrator's config with the tools, features and approval mode this IDE's `hello`
    settles on: the mode asked for, else `ask` for an IDE that answers approvals and
    `auto-edit` for one that cannot (it must never be left waiting for a decision).

    They are part of the recorded config, so replay and a restart offer the same tools.
    """
    declared = capabilities.tools if capabilities is not None else None
    wanted = set(capabilities.features) if capabilities is not None else set()
    features = tuple(feature for feature in FEATURES if feature in wanted)
    default = ApprovalMode.ASK if FEATURE_APPROVALS in features else ApprovalMode.AUTO_EDIT
    return dataclasses.replace(
        base,
        tools=offered_tools(declared),
        features=features,
        approval=str(approval or default),
    )


class SessionLimitReached(AgentServiceError):
    """No new session may be opened now."""

    code = ErrorCode.SESSION_LIMIT


class SessionRegistry:
    """Owns every live session of this orchestrator process."""

    def __init__(
        self,
        config: CoreConfig,
        llm: LlmClient,
        recorder: Recorder,
        limits: SessionLimits | None = None,
        on_freed: Callable[[str], None] | None = None,
    ) -> None:
        """`on_freed(session_id)` hears of each session this process lets go."""
        self.config = config
        self.limits = limits or SessionLimits()
        self._llm = llm
        self._recorder = recorder
        self._sessions: dict[str, SessionRuntime] = {}
        self._owners: dict[str, str] = {}
        self._reapers: dict[str, asyncio.TimerHandle] = {}
        self._on_freed = on_freed

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, session_id: str) -> SessionRuntime | None:
        """The live session with this id, if any."""
        return self._sessions.get(session_id)

    def create(
        self,
        principal: str,
        capabilities: Capabilities | None = None,
        approval: str | None = None,
        held_elsewhere: int = 0,
    ) -> SessionRuntime:
        """A new session owned by `principal`, offering the tools its IDE declared, in the
        approval mode it asked for (see `session_config`); `held_elsewhere` more sessions
        of the token (on other orchestrators) count against its cap."""
        if len(self._sessions) >= self.limits.max_sessions:
            raise SessionLimitReached(f"this orchestrator holds {len(self._sessions)} sessions")
        owned = self.held_by(principal) + held_elsewhere
        if owned >= self.limits.max_sessions_per_principal:
            raise SessionLimitReached(f"this token already holds {owned} sessions")
        session_id = f"s_{secrets.token_hex(8)}"
        config = session_config(self.config, capabilities, approval)
        session = self._runtime(session_id, config)
        self._sessions[session_id] = session
        self._owners[session_id] = principal
        self._recorder.session_started(
            session_id, config, self._llm.settings.model or "", owner=principal
        )
        log.info("session created", extra={"session_id": session_id})
        return session

    def restore(
        self,
        session_id: str,
        config: CoreConfig,
        owner: str,
        inputs: list[Event],
        reserved_seq: int = 0,
    ) -> SessionRuntime:
        """Bring back a recorded session after a restart; it waits detached for its IDE."""
        session = self._runtime(session_id, config)
        self._sessions[session_id] = session
        self._owners[session_id] = owner
        session.rebuild(inputs, reserved_seq)
        self._reapers[session_id] = asyncio.get_running_loop().call_later(
            self.limits.grace_period_s, self._reap, session_id
        )
        log.info("session restored", extra={"session_id": session_id, "state": session.core.state})
        return session

    def _runtime(self, session_id: str, config: CoreConfig) -> SessionRuntime:
        return SessionRuntime(
            session_id, config, self._llm, self._recorder, self.limits.history_chars
        )

    def store_problem(self) -> str | None:
        """Why the transcript store cannot write now, if it cannot."""
        return self._recorder.problem

    def attached(self) -> int:
        """Sessions with an IDE connection now (the others wait for a resume)."""
        return sum(1 for session in self._sessions.values() if session.attachment is not None)

    def history_chars(self) -> int:
        """Characters of events all sessions keep for resume."""
        return sum(session.history.chars for session in self._sessions.values())

    def held_by(self, principal: str) -> int:
        """Sessions of `principal` here, attached or within their grace period."""
        return sum(1 for owner in self._owners.values() if owner == principal)

    def owned_by(self, session_id: str, principal: str) -> bool:
        """Only the token that opened a session may resume it."""
        return self._owners.get(session_id) == principal

    def attach(
        self, session: SessionRuntime, attachment: Attachment, last_seq: int, resumed: bool
    ) -> None:
        """Connect `attachment` to the session and stop its grace timer."""
        reaper = self._reapers.pop(session.session_id, None)
        if reaper is not None:
            reaper.cancel()
        session.attach(attachment, last_seq, resumed)

    def detach(self, session: SessionRuntime, attachment: Attachment) -> None:
        """The connection left: free the session after the grace period unless resumed."""
        session.detach(attachment)
        if session.attachment is None and session.session_id in self._sessions:
            self._reapers[session.session_id] = asyncio.get_running_loop().call_later(
                self.limits.grace_period_s, self._reap, session.session_id
            )

    def session_ids(self) -> list[str]:
        """The ids of every live session."""
        return list(self._sessions)

    def release(self, session_id: str, code: int, reason: str) -> None:
        """Another process owns the session now: stop it here and close its connection
        with `code`, so the IDE resumes where the session is."""
        session = self._free(session_id)
        if session is not None and session.attachment is not None:
            session.attachment.close(code, reason)
            log.info("session released", extra={"session_id": session_id})

    def _reap(self, session_id: str) -> None:
        if self._free(session_id) is not None:
            log.info("session expired", extra={"session_id": session_id})

    def _free(self, session_id: str) -> SessionRuntime | None:
        reaper = self._reapers.pop(session_id, None)
        if reaper is not None:
            reaper.cancel()
        session = self._sessions.pop(session_id, None)
        self._owners.pop(session_id, None)
        if session is not None:
            session.stop()
            if self._on_freed is not None:
                self._on_freed(session_id)
        return session

    def turns_running(self) -> int:
        """Sessions in the middle of a turn."""
        return sum(1 for session in self._sessions.values() if session.core.turn_id is not None)

    def close_all(self) -> None:
        """Shutdown: stop every session's work and flush what was recorded."""
        for handle in self._reapers.values():
            handle.cancel()
        self._reapers.clear()
        for session in self._sessions.values():
            session.stop()
            self._recorder.settle_seq(session.session_id, session.core.last_seq)
        self._recorder.flush()
