"""The orchestrator: a sans-I/O core per session, and the service that runs the cores.

The core's surface is imported here at once: `SessionCore` and `CoreConfig`, the `Event`s it
is fed and the `Command`s it answers with, the codec that writes both as text (transcripts,
replay), and the `Recorder` protocol the runtime reports through. The service side
(`OrchestratorServer`, `SessionRegistry`, `LlmClient`, `BrokerNode`, ...) is loaded on first
use: it brings the HTTP and NATS clients, half a second of imports that a command reading a
transcript should not pay for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from orchestrator.codec import (
    CODEC_VERSION,
    COMMAND_TAGS,
    EVENT_TAGS,
    CodecError,
    check_version,
    decode_command,
    decode_config,
    decode_event,
    encode,
    encode_config,
)
from orchestrator.commands import (
    AbortLlmRequest,
    ClearToolTimer,
    Command,
    EmitEvent,
    RejectEvent,
    StartLlmRequest,
    StartToolTimer,
    StartTurnTimer,
)
from orchestrator.core import DEFAULT_SYSTEM_PROMPT, CoreConfig, SessionCore, replay_inputs
from orchestrator.events import (
    ApprovalAnswered,
    ApprovalModeSet,
    CancelRequested,
    Event,
    FilesRevertedByUser,
    LlmFailed,
    LlmStreamEnded,
    LlmTextDelta,
    LlmToolCallsCompleted,
    ModelToolCall,
    SeqFloorRaised,
    ToolResultReceived,
    ToolTimedOut,
    TurnDeadlineReached,
    UserMessageReceived,
)
from orchestrator.recording import NullRecorder, Recorder, flushed_in_background

if TYPE_CHECKING:
    from orchestrator.broker_node import BrokerNode, BrokerSettings, BrokerUnavailable
    from orchestrator.endpoint import ClientEndpoint
    from orchestrator.llm_client import LlmClient, LlmSettings, lookup_context_window
    from orchestrator.server import OrchestratorServer, ServerSettings
    from orchestrator.sessions import SessionLimits, SessionRegistry

# name -> the module of the service side that defines it, imported on first use.
_SERVICE: dict[str, str] = {
    "BrokerNode": "orchestrator.broker_node",
    "BrokerSettings": "orchestrator.broker_node",
    "BrokerUnavailable": "orchestrator.broker_node",
    "ClientEndpoint": "orchestrator.endpoint",
    "LlmClient": "orchestrator.llm_client",
    "LlmSettings": "orchestrator.llm_client",
    "lookup_context_window": "orchestrator.llm_client",
    "OrchestratorServer": "orchestrator.server",
    "ServerSettings": "orchestrator.server",
    "SessionLimits": "orchestrator.sessions",
    "SessionRegistry": "orchestrator.sessions",
}


def __getattr__(name: str) -> Any:
    """Load a service-side name from its module when it is first asked for (PEP 562)."""
    module = _SERVICE.get(name)
    if module is None:
        raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "CODEC_VERSION",
    "COMMAND_TAGS",
    "DEFAULT_SYSTEM_PROMPT",
    "EVENT_TAGS",
    "AbortLlmRequest",
    "ApprovalAnswered",
    "ApprovalModeSet",
    "BrokerNode",
    "BrokerSettings",
    "BrokerUnavailable",
    "CancelRequested",
    "ClearToolTimer",
    "ClientEndpoint",
    "CodecError",
    "Command",
    "CoreConfig",
    "EmitEvent",
    "Event",
    "FilesRevertedByUser",
    "LlmClient",
    "LlmFailed",
    "LlmSettings",
    "LlmStreamEnded",
    "LlmTextDelta",
    "LlmToolCallsCompleted",
    "ModelToolCall",
    "NullRecorder",
    "OrchestratorServer",
    "Recorder",
    "RejectEvent",
    "SeqFloorRaised",
    "ServerSettings",
    "SessionCore",
    "SessionLimits",
    "SessionRegistry",
    "StartLlmRequest",
    "StartToolTimer",
    "StartTurnTimer",
    "ToolResultReceived",
    "ToolTimedOut",
    "TurnDeadlineReached",
    "UserMessageReceived",
    "check_version",
    "decode_command",
    "decode_config",
    "decode_event",
    "encode",
    "encode_config",
    "flushed_in_background",
    "lookup_context_window",
    "replay_inputs",
]
