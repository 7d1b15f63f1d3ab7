"""The `agent-service` command line: services, the reference IDE, tools for operators."""
