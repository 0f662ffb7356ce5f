"""A FAKE dolt, only for faults a real Dolt cannot be made to show.

Run through the dolt-fake-* wrappers, whose names start with "dolt" so the package's process
identity check sees a `dolt … sql-server`, and whose names say they are fakes.

Modes:
  dies-at-start    print an error like Dolt's and exit 1
  never-ready      stay alive, never listen
  ignores-sigterm  listen on --port (plain TCP, no MySQL) and ignore SIGTERM
  old-version      answer `dolt version` with a version other than the pinned one
"""

import signal
import socket
import sys
import time

mode, args = sys.argv[1], sys.argv[2:]


def flag(name, default=None):
    return args[args.index(name) + 1] if name in args else default


if mode == "old-version" and args[:1] == ["version"]:
    print("dolt version 1.0.0", flush=True)
    sys.exit(0)

if "sql-server" not in args:
    print(f"fake dolt ({mode}) only fakes sql-server", file=sys.stderr)
    sys.exit(2)

if mode == "dies-at-start":
    print('fake dolt: error: database "hq" is locked by another dolt process', flush=True)
    sys.exit(1)

if mode == "never-ready":
    print("fake dolt: pretending to start and never listening", flush=True)
    while True:
        time.sleep(3600)

if mode == "ignores-sigterm":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((flag("--host", "127.0.0.1"), int(flag("--port", "3307"))))
    server.listen()
    print("fake dolt: listening and ignoring SIGTERM", flush=True)
    while True:
        conn, _ = server.accept()
        conn.close()

sys.exit(f"unknown fake mode {mode}")
