"""`agent-service acp`: the service as an Agent Client Protocol agent, for ACP editors."""

from acp_agent.agent import ServiceAgent, prompt_text
from acp_agent.local_stack import LocalStack, LocalStackError
from acp_agent.modes import ApprovalMode, EditPolicy
from acp_agent.offered import offered_tools
from acp_agent.patching import PlannedEdit, plan_patch
from acp_agent.session import BridgeSession, Gateway, SessionSettings

__all__ = [
    "ApprovalMode",
    "BridgeSession",
    "EditPolicy",
    "Gateway",
    "LocalStack",
    "LocalStackError",
    "PlannedEdit",
    "ServiceAgent",
    "SessionSettings",
    "offered_tools",
    "plan_patch",
    "prompt_text",
]
