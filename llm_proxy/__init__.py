"""llm_proxy package."""
