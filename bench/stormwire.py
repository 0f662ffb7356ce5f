"""The few MySQL wire exchanges a storm client needs, on asyncio streams: log in, run one statement,
quit.  A storm of hundreds of connections a second from Python threads and PyMySQL measures the
GIL more than the server (1-2 ms of Python per connection); one event loop speaking the protocol
directly costs a fraction of that.

Only what Dolt's passwordless root needs: protocol 4.1, mysql_native_password with an empty
password (an auth switch is answered with an empty response), text results read to their end.
"""

from __future__ import annotations

import asyncio
import struct

CAPABILITIES = (
    0x1  # CLIENT_LONG_PASSWORD
    | 0x200  # CLIENT_PROTOCOL_41
    | 0x2000  # CLIENT_TRANSACTIONS
    | 0x8000  # CLIENT_SECURE_CONNECTION
    | 0x20000  # CLIENT_MULTI_RESULTS
    | 0x80000  # CLIENT_PLUGIN_AUTH
)
CONNECT_WITH_DB = 0x8
UTF8MB4 = 45


class ServerError(Exception):
    """An ERR packet: (code, message)."""


def _packet(seq: int, payload: bytes) -> bytes:
    return struct.pack("<I", len(payload))[:3] + bytes([seq & 0xFF]) + payload


async def _read(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readexactly(4)
    return head[3], await reader.readexactly(int.from_bytes(head[:3], "little"))


def _check(payload: bytes) -> None:
    if payload[:1] == b"\xff":
        code = int.from_bytes(payload[1:3], "little")
        message = payload[9:] if payload[3:4] == b"#" else payload[3:]
        raise ServerError(code, message.decode(errors="replace"))


def _is_eof(payload: bytes) -> bool:
    return payload[:1] == b"\xfe" and len(payload) < 9


async def login(
    host: str, port: int, user: str, database: str | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection logged in (no password), ready for a statement."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        await _read(reader)  # the greeting: its salt is not needed for an empty password
        caps = CAPABILITIES | (CONNECT_WITH_DB if database else 0)
        body = struct.pack("<IIB", caps, 1 << 24, UTF8MB4) + b"\x00" * 23 + user.encode() + b"\x00"
        body += b"\x00"  # an empty auth response
        if database:
            body += database.encode() + b"\x00"
        body += b"mysql_native_password\x00"
        writer.write(_packet(1, body))
        seq, reply = await _read(reader)
        if reply[:1] == b"\xfe":  # auth switch: the empty password's response is empty
            writer.write(_packet(seq + 1, b""))
            seq, reply = await _read(reader)
        _check(reply)
    except BaseException:
        writer.close()
        raise
    return reader, writer


async def query(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sql: str) -> None:
    """Run one statement and read its whole answer; an ERR packet raises ServerError."""
    writer.write(_packet(0, b"\x03" + sql.encode()))
    _, first = await _read(reader)
    _check(first)
    if first[:1] == b"\x00":
        return  # OK: a statement without rows
    columns = first[0]  # a column count under 251 is one byte
    for _ in range(columns):
        await _read(reader)
    _, payload = await _read(reader)  # EOF after the column definitions
    while True:
        _, payload = await _read(reader)
        _check(payload)
        if _is_eof(payload):
            return


def quit_and_close(writer: asyncio.StreamWriter) -> None:
    writer.write(_packet(0, b"\x01"))  # COM_QUIT
    writer.close()
