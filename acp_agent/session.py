"""One ACP session: a gateway session of the service, driven from the editor.

The ACP session id is the service's session id, so `session/load` is a resume: the gateway
replays the session's events, which go to the editor as updates, and the session goes on.
A prompt is one turn (`IdeClient.run_turn`); its events become updates as they arrive, and its
tool calls run through the editor (`EditorTools`).

The service asks for approval itself (the bridge declares `approvals`, and the session starts
in the bridge's mode): each `approval_request` becomes `session/request_permission`, whose
answer goes back as the `approval` frame: allow_once → `allow_once`, allow_always →
`allow_tool`, reject_once → `reject`, reject_always → `reject` and the session made read-only.
A service without the feature leaves the asking to the bridge, as before.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from acp import RequestError
from acp.helpers import update_current_mode
from acp.interfaces import Client
from acp.schema import ClientCapabilities, PromptResponse, UsageUpdate
from acp.schema import Usage as AcpUsage

from acp_agent.editor_tools import (
    ALLOW_ALWAYS,
    ALLOW_ONCE,
    REJECT_ALWAYS,
    RESOURCE_NOT_FOUND,
    EditorTools,
)
from acp_agent.events import EventMapper
from acp_agent.link import EditorLink
from acp_agent.modes import ApprovalMode, EditPolicy
from acp_agent.offered import offered_tools
from ide_client import ApprovalAnswer, GatewayError, IdeClient, IdeClientError, Workspace
from wire import (
    FEATURE_APPROVALS,
    ApprovalRequest,
    Decision,
    Error,
    ErrorCode,
    ServerMessage,
    SessionState,
)
from wire import ApprovalMode as ServiceMode

_RUNNING = frozenset({SessionState.STREAMING, SessionState.AWAITING_TOOL})
_DECISIONS = {ALLOW_ONCE: Decision.ALLOW_ONCE, ALLOW_ALWAYS: Decision.ALLOW_TOOL}


@dataclass(frozen=True)
class Gateway:
    """Where the service's gateway listens and the token it wants."""

    url: str
    token: str


@dataclass(frozen=True)
class SessionSettings:
    """What every session of this bridge shares."""

    mode: ApprovalMode = ApprovalMode.ASK
    context_window: int | None = None


class BridgeSession:
    """An open ACP session and its gateway connection."""

    def __init__(
        self,
        editor: Client,
        cwd: str,
        capabilities: ClientCapabilities | None,
        settings: SessionSettings,
        prompts: dict[int, str],
    ) -> None:
        try:
            workspace = Workspace(cwd)
        except IdeClientError as exc:
            raise RequestError.invalid_params({"cwd": cwd, "message": exc.message}) from None
        self.settings = settings
        self.link = EditorLink(editor)
        self.mapper = EventMapper(Path(workspace.root), prompts)
        self.policy = EditPolicy(settings.mode)
        self.offered = offered_tools(capabilities)
        self.tools = EditorTools(
            self.link,
            self.mapper,
            self.policy,
            workspace,
            self.offered,
            asyncio.get_running_loop(),
        )
        self._client: IdeClient | None = None
        self._prompt_running = False
        self._cancel_requested = False

    @property
    def session_id(self) -> str:
        """The service's (and so the ACP) session id."""
        return self.link.session_id

    async def open(self, gateway: Gateway, session_id: str | None = None) -> None:
        """Open a new gateway session, or resume `session_id` and replay its history."""
        client = IdeClient(
            gateway.url,
            gateway.token,
            self.tools,
            on_event=self._on_event,
            session_id=session_id,
            implemented_tools=self.offered,
            on_approval=self._approve,
            approval=ServiceMode(self.policy.mode.value) if session_id is None else None,
        )
        try:
            session = await client.connect()
        except GatewayError as exc:
            raise _request_error(exc) from None
        self._client = client
        self.link.session_id = session.session_id
        if self.service_approves:
            self.policy.mode = ApprovalMode(session.approval)
        if session_id is None:
            return
        if session.state in _RUNNING:
            await client.close()
            raise RequestError.invalid_request(
                {
                    "code": "session_busy",
                    "message": f"session {session_id} is running a turn ({session.state}); "
                    "load it again once the turn has ended",
                }
            )
        self.mapper.replaying = True
        try:
            await client.catch_up()
        except GatewayError as exc:
            raise _request_error(exc) from None
        finally:
            self.mapper.replaying = False
        await self.link.flush()

    @property
    def service_approves(self) -> bool:
        """The service asks for approval itself (it took up the `approvals` feature)."""
        session = self._client.session if self._client is not None else None
        return session is not None and FEATURE_APPROVALS in session.features

    async def set_mode(self, mode: ApprovalMode) -> None:
        """Switch the approval mode (the service's too, when it asks), and say so."""
        self.policy.mode = mode
        if self.service_approves:
            try:
                await self._connected().set_approval(ServiceMode(mode.value))
            except GatewayError as exc:
                raise _request_error(exc) from None
        self.link.notify(update_current_mode(mode.value))
        await self.link.flush()

    async def _approve(self, request: ApprovalRequest) -> ApprovalAnswer:
        """The editor's answer to one approval request, as the service takes it."""
        chosen = await self.tools.ask_approval(request)
        if chosen is None:
            return ApprovalAnswer(Decision.REJECT, "The user cancelled.", end_turn=True)
        decision = _DECISIONS.get(chosen)
        if decision is not None:
            return ApprovalAnswer(decision)
        if chosen == REJECT_ALWAYS:
            self.policy.mode = ApprovalMode.READ_ONLY
            await self._connected().set_approval(ServiceMode.READ_ONLY)
            self.link.notify(update_current_mode(ApprovalMode.READ_ONLY.value))
        return ApprovalAnswer(Decision.REJECT)

    async def prompt(self, text: str) -> PromptResponse:
        """Run one turn; answer when the session has come to rest."""
        client = self._connected()
        if self._prompt_running:
            raise RequestError.invalid_request(
                {"code": ErrorCode.BUSY, "message": "a prompt is already running in this session"}
            )
        self._prompt_running = True
        self._cancel_requested = False
        self.tools.new_turn()
        self.mapper.next_prompt = text
        try:
            turn = await client.run_turn(text)
        except GatewayError as exc:
            raise _request_error(exc) from None
        finally:
            self._prompt_running = False
        response = self._answer()
        await self.link.flush()
        if turn.state is None:
            refusal = next((f for f in turn.of_type(Error) if f.id == turn.message_id), None)
            raise RequestError.invalid_request(
                {
                    "code": refusal.code if refusal else "refused",
                    "message": refusal.message if refusal else "the service refused the prompt",
                }
            )
        return response

    async def cancel(self) -> None:
        """Stop the running turn: editor requests first, then the service's turn."""
        if not self._prompt_running:
            return
        self._cancel_requested = True
        self.tools.cancel()
        await self._connected().cancel()

    async def close(self) -> None:
        """Close the gateway connection (the service keeps the session for its grace period)."""
        if self._client is not None:
            await self._client.close()
        await self.link.close()

    def _answer(self) -> PromptResponse:
        """The prompt's response; the context figures go out as a `usage_update` first."""
        usage = self.mapper.outcome.usage
        acp_usage = None
        if usage is not None:
            acp_usage = AcpUsage(
                input_tokens=usage.prompt_tokens,
                output_tokens=usage.completion_tokens,
                total_tokens=usage.prompt_tokens + usage.completion_tokens,
            )
            if self.settings.context_window:
                size = self.settings.context_window
                used = min(usage.prompt_tokens + usage.completion_tokens, size)
                self.link.notify(UsageUpdate(session_update="usage_update", used=used, size=size))
        return PromptResponse(
            stop_reason=self.mapper.stop_reason(self._cancel_requested), usage=acp_usage
        )

    def _on_event(self, event: ServerMessage) -> None:
        if isinstance(event, Error) and event.code == ErrorCode.TIMEOUT and event.call_id:
            self.tools.abandon(event.call_id)
        for update in self.mapper.updates(event):
            self.link.notify(update)

    def _connected(self) -> IdeClient:
        if self._client is None:
            raise RequestError.internal_error({"message": "the session is not connected"})
        return self._client


def _request_error(exc: GatewayError) -> RequestError:
    """A gateway failure as the JSON-RPC error the editor shows."""
    if exc.code == ErrorCode.UNKNOWN_SESSION:
        return RequestError(RESOURCE_NOT_FOUND, "Resource not found", {"message": exc.message})
    return RequestError.internal_error({"code": exc.code, "message": exc.message})
