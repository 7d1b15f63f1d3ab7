"""The proxy's listening socket, made so that every connection it accepts has TCP_NODELAY.

asyncio turns Nagle's algorithm off only on sockets whose `proto` is
IPPROTO_TCP, and Sanic's own listening socket has `proto` 0. With Nagle on, the
second small write of a response on a reused keep-alive connection (the first
token after the role chunk) waits for the caller's delayed ACK, about 40 ms.
This socket is the one Sanic would bind (same family, address and options)
but with IPPROTO_TCP, so every connection accepted from it sends each chunk at once.
"""

from __future__ import annotations

import ipaddress
import socket

LISTEN_BACKLOG = 1024


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host`:`port` and listening; raises OSError if it cannot be."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def _family(host: str) -> socket.AddressFamily:
    """IPv6 for an IPv6 address; IPv4 for anything else, a host name included."""
    try:
        version = ipaddress.ip_address(host).version
    except ValueError:
        return socket.AF_INET
    return socket.AF_INET6 if version == 6 else socket.AF_INET
