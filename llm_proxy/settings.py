"""The proxy's tunables: timeouts, retries and the demo model's pace."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_CONNECT_TIMEOUT = 60.0
DEFAULT_IDLE_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2
DEFAULT_DEMO_DELAY_MS = 20


@dataclass(frozen=True)
class ProxySettings:
    """How long to wait for upstreams, how often to retry them, how fast the demo speaks.

    `connect_timeout` covers connecting, sending the request and receiving the first
    chunk (for a non-streamed request: the response headers). `idle_timeout` is the
    longest silence allowed between two chunks once the answer has started.
    """

    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    demo_delay: float = DEFAULT_DEMO_DELAY_MS / 1000
