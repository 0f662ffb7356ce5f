"""A FAKE MySQL server, only for an impostor a real Dolt cannot be made to play: it asks the client
to switch to mysql_clear_password (the password in clear text) and records every packet it gets;
with `deny`, it refuses every login with error 1045 instead (a peer with another password).

    python fake_mysql.py PORT CAPTURE_FILE [deny]

It binds 127.0.0.1:PORT, prints "listening" and serves one client at a time until killed.
"""

import socket
import struct
import sys

port, capture = int(sys.argv[1]), sys.argv[2]
deny = sys.argv[3:] == ["deny"]


def packet(seq: int, payload: bytes) -> bytes:
    return struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload


def receive(conn: socket.socket) -> tuple[int, bytes]:
    head = b""
    while len(head) < 4:
        chunk = conn.recv(4 - len(head))
        if not chunk:
            raise EOFError
        head += chunk
    size, seq, body = int.from_bytes(head[:3], "little"), head[3], b""
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise EOFError
        body += chunk
    with open(capture, "ab") as out:
        out.write(body + b"\n")
    return seq, body


def serve(conn: socket.socket) -> None:
    salt = b"s" * 20
    greeting = (
        b"\x0a8.0.33\x00"
        + struct.pack("<I", 1)
        + salt[:8]
        + b"\x00"
        + struct.pack("<H", 0xF7FF)
        + bytes([33])
        + struct.pack("<H", 2)
        + struct.pack("<H", 0x81FF)
        + bytes([21])
        + b"\x00" * 10
        + salt[8:]
        + b"\x00mysql_native_password\x00"
    )
    conn.sendall(packet(0, greeting))
    seq, _ = receive(conn)
    if deny:
        conn.sendall(packet(seq + 1, b"\xff" + struct.pack("<H", 1045) + b"#28000Access denied for user 'root'"))
        return
    conn.sendall(packet(seq + 1, b"\xfemysql_clear_password\x00"))
    receive(conn)  # the password, if the client sends it


server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", port))
server.listen(16)
print("listening", flush=True)
while True:
    client, _ = server.accept()
    try:
        serve(client)
    except (EOFError, OSError):
        pass
    finally:
        client.close()
