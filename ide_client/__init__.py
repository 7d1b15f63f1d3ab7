"""The reference IDE: its tools confined to a workspace, and a protocol v1 client.

`plan_patch(diff, read)` is apply_patch's pure core, for any IDE or bridge: `diff` is a
unified diff or a `*** Begin Patch` patch, `read(path)` returns a file's current text (None
when there is none); it returns a `PlannedFile` (path, new text or None when deleted,
created, executable, source) per changed file, or raises `PatchConflict`, whose `message`
and `details` say which hunks were refused and why. Write the result all or nothing.

`IdeClient` takes an `ApprovalHandler` (answers each `approval_request` with an
`ApprovalAnswer`) and a `CheckpointStore` (the one its `ToolRunner` writes through, so that
`undo` can put a turn's files back; `CheckpointError` says why it would not).
"""

from ide_client import terminal
from ide_client.approvals import QUESTION, ApprovalAnswer, ApprovalHandler, preview, read_answer
from ide_client.checkpoints import CheckpointCode, CheckpointError, CheckpointStore, Reverted
from ide_client.client import DEFAULT_URL, IdeClient, Turn, run_one_turn
from ide_client.display import ConsoleDisplay, describe_call
from ide_client.errors import (
    GatewayCode,
    GatewayError,
    IdeClientError,
    ReplayCode,
    ReplayError,
    ToolCode,
    ToolFailure,
)
from ide_client.patch import Conflict, PatchConflict, PatchError, PlannedFile, plan_patch
from ide_client.recent_sessions import (
    HISTORY_FILE,
    RecentSession,
    RecentSessions,
    skip_history,
    state_dir,
)
from ide_client.repository import find_repository
from ide_client.sample import create_sample_workspace
from ide_client.tools import ToolRunner
from ide_client.workspace import AGENT_CONFIG_DIR, DEFAULT_MAX_FILE_BYTES, Workspace

__all__ = [
    "AGENT_CONFIG_DIR",
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_URL",
    "HISTORY_FILE",
    "QUESTION",
    "ApprovalAnswer",
    "ApprovalHandler",
    "CheckpointCode",
    "CheckpointError",
    "CheckpointStore",
    "Conflict",
    "ConsoleDisplay",
    "GatewayCode",
    "GatewayError",
    "IdeClient",
    "IdeClientError",
    "PatchConflict",
    "PatchError",
    "PlannedFile",
    "RecentSession",
    "RecentSessions",
    "ReplayCode",
    "ReplayError",
    "Reverted",
    "ToolCode",
    "ToolFailure",
    "ToolRunner",
    "Turn",
    "Workspace",
    "create_sample_workspace",
    "describe_call",
    "find_repository",
    "plan_patch",
    "preview",
    "read_answer",
    "run_one_turn",
    "skip_history",
    "state_dir",
    "terminal",
]
