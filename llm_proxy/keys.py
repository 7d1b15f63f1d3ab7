"""Proxy keys: which callers may use the proxy, checked in constant time.

With no key configured the proxy is open to anyone who can reach it, which is
why it binds to loopback by default.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from pathlib import Path

from llm_proxy.errors import InvalidProxyKey


class ProxyKeys:
    """The accepted `Authorization: Bearer <key>` values."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = tuple(key.encode() for key in keys if key)

    @property
    def required(self) -> bool:
        """Whether callers must present a key at all."""
        return bool(self._keys)

    def check(self, authorization: str | None) -> None:
        """Raise InvalidProxyKey unless the header carries an accepted key."""
        if not self._keys:
            return
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise InvalidProxyKey(
                "You didn't provide an API key. Send the proxy key as 'Authorization: Bearer <key>'."
            )
        candidate = presented.strip().encode()
        accepted = False
        for key in self._keys:
            accepted |= hmac.compare_digest(key, candidate)
        if not accepted:
            raise InvalidProxyKey("Incorrect API key provided: this key is not a proxy key.")


def read_key_file(path: Path) -> list[str]:
    """Keys from a file, one a line; blank lines and `#` comments are skipped."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
