"""The ACP agent: `initialize`, sessions, prompts, cancel and modes, over the service's gateway.

Each ACP method maps onto the IDE protocol (docs/acp.md has the whole table). The gateway's
address comes from `GatewaySource`: a given `--url`, or the local stack the bridge started.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from acp import PROTOCOL_VERSION, RequestError
from acp.interfaces import Client
from acp.schema import (
    AgentCapabilities,
    AudioContentBlock,
    ClientCapabilities,
    EmbeddedResourceContentBlock,
    ImageContentBlock,
    Implementation,
    InitializeResponse,
    LoadSessionResponse,
    NewSessionResponse,
    PromptCapabilities,
    PromptResponse,
    ResourceContentBlock,
    SetSessionModeResponse,
    TextContentBlock,
)

from acp_agent.modes import ApprovalMode
from acp_agent.session import BridgeSession, Gateway, SessionSettings

log = logging.getLogger(__name__)

GatewaySource = Callable[[], Awaitable[Gateway]]
PromptBlock = (
    TextContentBlock
    | ImageContentBlock
    | AudioContentBlock
    | ResourceContentBlock
    | EmbeddedResourceContentBlock
)


class ServiceAgent:
    """One editor's connection: its capabilities and its open sessions."""

    def __init__(self, gateway: GatewaySource, settings: SessionSettings) -> None:
        self._gateway = gateway
        self._settings = settings
        self._editor: Client | None = None
        self._capabilities: ClientCapabilities | None = None
        self._sessions: dict[str, BridgeSession] = {}
        # The user's prompts by session and turn number, to replay them on `session/load`:
        # the service's events do not carry them.
        self._prompts: dict[str, dict[int, str]] = {}

    def on_connect(self, conn: Client) -> None:
        """The SDK hands over the editor connection."""
        self._editor = conn

    async def initialize(
        self,
        protocol_version: int,
        client_capabilities: ClientCapabilities | None = None,
        client_info: Implementation | None = None,
        **kwargs: Any,
    ) -> InitializeResponse:
        """Remember what the editor can do; say what this agent can."""
        self._capabilities = client_capabilities
        log.info(
            "editor connected",
            extra={
                "editor": client_info.name if client_info else None,
                "protocol": protocol_version,
            },
        )
        return InitializeResponse(
            protocol_version=min(protocol_version, PROTOCOL_VERSION),
            agent_capabilities=AgentCapabilities(
                load_session=True,
                prompt_capabilities=PromptCapabilities(
                    image=False, audio=False, embedded_context=False
                ),
            ),
            agent_info=Implementation(
                name="agent-service", title="agent-service", version=_version()
            ),
            auth_methods=[],
        )

    async def new_session(
        self, cwd: str, mcp_servers: Any = None, **kwargs: Any
    ) -> NewSessionResponse:
        """A new service session whose workspace is `cwd`."""
        session = await self._open(cwd, None)
        return NewSessionResponse(session_id=session.session_id, modes=session.policy.mode_state())

    async def load_session(
        self, cwd: str, session_id: str, mcp_servers: Any = None, **kwargs: Any
    ) -> LoadSessionResponse:
        """Resume a known session; its history reaches the editor as updates before this answers."""
        previous = self._sessions.pop(session_id, None)
        if previous is not None:
            await previous.close()
        session = await self._open(cwd, session_id)
        return LoadSessionResponse(modes=session.policy.mode_state())

    async def set_session_mode(
        self, session_id: str, mode_id: str, **kwargs: Any
    ) -> SetSessionModeResponse:
        """Switch the session's approval mode (ask, auto-edit, read-only)."""
        session = self._session(session_id)
        try:
            mode = ApprovalMode(mode_id)
        except ValueError:
            known = ", ".join(mode.value for mode in ApprovalMode)
            raise RequestError.invalid_params(
                {"modeId": mode_id, "message": f"unknown mode; the modes are {known}"}
            ) from None
        await session.set_mode(mode)
        return SetSessionModeResponse()

    async def prompt(
        self, session_id: str, prompt: list[PromptBlock], **kwargs: Any
    ) -> PromptResponse:
        """One turn of the session; answers with its stop reason."""
        return await self._session(session_id).prompt(prompt_text(prompt))

    async def cancel(self, session_id: str, **kwargs: Any) -> None:
        """Stop the session's running turn; its prompt then answers `cancelled`."""
        session = self._sessions.get(session_id)
        if session is not None:
            await session.cancel()

    async def close(self) -> None:
        """Close every session's gateway connection (the editor went away)."""
        for session in list(self._sessions.values()):
            await session.close()
        self._sessions.clear()

    async def _open(self, cwd: str, session_id: str | None) -> BridgeSession:
        if self._editor is None:
            raise RequestError.internal_error({"message": "no editor connection"})
        try:
            gateway = await self._gateway()
        except Exception as exc:
            raise RequestError.internal_error(
                {"message": f"the agent service is not available: {exc}"}
            ) from None
        prompts = self._prompts.setdefault(session_id, {}) if session_id else {}
        session = BridgeSession(self._editor, cwd, self._capabilities, self._settings, prompts)
        await session.open(gateway, session_id)
        self._prompts[session.session_id] = session.mapper.prompts
        self._sessions[session.session_id] = session
        log.info(
            "session open",
            extra={"session_id": session.session_id, "loaded": session_id is not None, "cwd": cwd},
        )
        return session

    def _session(self, session_id: str) -> BridgeSession:
        session = self._sessions.get(session_id)
        if session is None:
            raise RequestError.invalid_params(
                {"sessionId": session_id, "message": "unknown session: create or load it first"}
            )
        return session


def prompt_text(blocks: list[PromptBlock]) -> str:
    """The prompt as the text the service takes; content it cannot take is refused."""
    parts = []
    for block in blocks:
        if isinstance(block, TextContentBlock):
            parts.append(block.text)
        elif isinstance(block, ResourceContentBlock):
            parts.append(f"[{block.name}]({block.uri})")
        else:
            raise RequestError.invalid_params(
                {"message": f"this agent takes text and resource links only, not {block.type}"}
            )
    text = "".join(parts)
    if not text.strip():
        raise RequestError.invalid_params({"message": "the prompt is empty"})
    return text


def _version() -> str:
    try:
        return importlib.metadata.version("agent-service")
    except importlib.metadata.PackageNotFoundError:
        return "0"
