"""TCP connections to the server: the cheap probe (does anything listen?) and the socket PyMySQL
then speaks over.

An address is connected directly; only a name is resolved.  (`socket.create_connection` resolves
even "127.0.0.1", through the idna codec, which costs about a millisecond to import.)
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
import struct


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
    if self_connected(sock):
        drop(sock)
        raise ConnectionRefusedError(errno.ECONNREFUSED, f"nothing listens on {host}:{port}")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def self_connected(sock: socket.socket) -> bool:
    """A connect to a port nobody listens on can, on loopback, pick that very port as its own
    source port and connect to itself (TCP simultaneous open): it looks like a server answering,
    and its TIME_WAIT then keeps the server from binding the port for a minute."""
    try:
        return bool(sock.getsockname() == sock.getpeername())
    except OSError:
        return False


def drop(sock: socket.socket) -> None:
    """Close with a reset: no TIME_WAIT left on the port."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether anything accepts a TCP connection on host:port (a refused connect takes microseconds)."""
    try:
        connect(host, port, timeout).close()
    except OSError:
        return False
    return True
