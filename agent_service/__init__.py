"""The `agent-service` command line: services, the reference IDE, tools for operators."""

from agent_service.cli import main
from agent_service.failures import OperatorError

__all__ = ["OperatorError", "main"]
