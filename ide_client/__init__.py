"""The reference IDE: the four tools confined to a workspace, and a protocol v1 client."""

from ide_client.client import DEFAULT_URL, IdeClient, Turn, run_one_turn
from ide_client.display import ConsoleDisplay
from ide_client.errors import GatewayCode, GatewayError, IdeClientError, ToolCode, ToolFailure
from ide_client.sample import create_sample_workspace
from ide_client.tools import ToolRunner
from ide_client.workspace import AGENT_CONFIG_DIR, DEFAULT_MAX_FILE_BYTES, Workspace

__all__ = [
    "AGENT_CONFIG_DIR",
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_URL",
    "ConsoleDisplay",
    "GatewayCode",
    "GatewayError",
    "IdeClient",
    "IdeClientError",
    "ToolCode",
    "ToolFailure",
    "ToolRunner",
    "Turn",
    "Workspace",
    "create_sample_workspace",
    "run_one_turn",
]
