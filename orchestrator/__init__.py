"""The orchestrator: per-session state machines, the asyncio runtime that drives them, the LLM client."""
