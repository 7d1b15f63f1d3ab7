"""Checks that the services behind the gateway answer their /healthz."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit


async def answers_healthy(base_url: str, timeout_s: float = 2.0) -> bool:
    """True when `GET <base_url>/healthz` answers 200 within `timeout_s`."""
    parts = urlsplit(base_url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme in ("https", "wss") else 80)
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(
                f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
            status_line = await reader.readline()
            writer.close()
    except (OSError, TimeoutError):
        return False
    fields = status_line.split()
    return len(fields) >= 2 and fields[1] == b"200"
