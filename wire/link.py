"""The internal link between a gateway and an orchestrator: what both ends must spell alike."""

from __future__ import annotations

PRINCIPAL_HEADER = "X-Agent-Principal"
"""Header of each link connection naming who opened the session (a digest of the IDE's token,
never the token): only the same principal may resume it."""
