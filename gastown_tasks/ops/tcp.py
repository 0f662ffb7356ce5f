"""TCP connections to the server: the cheap probe (does anything listen?) and the socket PyMySQL
then speaks over.

An address is connected directly; only a name is resolved.  (`socket.create_connection` resolves
even "127.0.0.1", through the idna codec, which costs about a millisecond to import.)
"""

from __future__ import annotations

import ipaddress
import socket


def connect(host: str, port: int, timeout: float) -> socket.socket:
    """A connected TCP socket with Nagle off (raises OSError: refused, timed out, unreachable)."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        try:
            sock = socket.create_connection((host, port), timeout=max(timeout, 0.001))
        except UnicodeError:  # a name the resolver cannot encode (settings refuse them; be sure)
            raise OSError(f"cannot resolve {host!r}") from None
    else:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(max(timeout, 0.001))
            sock.connect((host, port))
        except BaseException:
            sock.close()
            raise
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether anything accepts a TCP connection on host:port (a refused connect takes microseconds)."""
    try:
        connect(host, port, timeout).close()
    except OSError:
        return False
    return True
