"""Refuses requests a web page could make: the proxy spends the user's upstream key, so a page
the user visits must not reach it, nor read its answers through DNS rebinding.

- `Host` must be an IP address, `localhost`, or a name the proxy was told it is
  reached by: a rebound DNS name (the attacker's, pointed at this machine) is refused.
- An `Origin` header (only browsers send one) must be on the allow-list, which is
  empty by default.
- A POST body must be `application/json`: a page can send `text/plain` (or a form)
  cross-site without a preflight, never `application/json`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from llm_proxy.errors import InvalidRequest

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


class HostNotAllowed(InvalidRequest):
    """The Host header names no address of this proxy (a rebound DNS name, for one)."""

    status = 403
    code = "host_not_allowed"


class OriginNotAllowed(InvalidRequest):
    """A browser page of an origin not on the allow-list made the request."""

    status = 403
    code = "origin_not_allowed"


class UnsupportedContentType(InvalidRequest):
    """The body is not declared as JSON."""

    status = 415
    code = "unsupported_content_type"


class CrossSitePolicy:
    """The Host names and browser Origins the proxy answers."""

    def __init__(self, allowed_hosts: Iterable[str], allowed_origins: Iterable[str]) -> None:
        self._hosts = frozenset(host.lower() for host in allowed_hosts if host)
        self._origins = frozenset(origin for origin in allowed_origins if origin)

    def check(self, method: str, headers: Mapping[str, str]) -> None:
        """Raise unless a web page of another site cannot have sent this request."""
        host = headers.get("host", "")
        if not self._host_allowed(host):
            raise HostNotAllowed(
                f"The Host {host[:100]!r} is not an address of this proxy; add it with "
                "--allowed-host if the proxy is reached by that name."
            )
        origin = headers.get("origin")
        if origin is not None and origin not in self._origins:
            raise OriginNotAllowed(
                f"Requests from the web page origin {origin[:100]!r} are refused."
            )
        if method == "POST":
            media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if media_type != "application/json":
                raise UnsupportedContentType(
                    "The request body must be sent as 'Content-Type: application/json'."
                )

    def _host_allowed(self, host: str) -> bool:
        name = _host_name(host)
        if name is None:
            return False
        if name in _LOOPBACK_NAMES or name in self._hosts:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True


def _host_name(host: str) -> str | None:
    """The name or address of a Host header value, without its port; None if malformed."""
    try:
        parts = urlsplit(f"//{host}")
        name = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return None
    return name.lower() if name else None
