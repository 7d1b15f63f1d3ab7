"""Checks that the services behind the gateway answer their /healthz, over a real HTTP client."""

from __future__ import annotations

import aiohttp


async def answers_healthy(base_url: str, timeout_s: float = 2.0) -> bool:
    """True when `GET <base_url>/healthz` answers 200 within `timeout_s` (http or https)."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(base_url.rstrip("/") + "/healthz", allow_redirects=False) as response,
        ):
            return response.status == 200
    except (aiohttp.ClientError, OSError, TimeoutError):
        return False
