"""A FAKE dolt, only for faults a real Dolt cannot be made to show.

Run through the dolt-fake-* wrappers, whose names start with "dolt" so the package's process
identity check sees a `dolt … sql-server`, and whose names say they are fakes.

Modes:
  dies-at-start    print an error like Dolt's and exit 1
  never-ready      stay alive, never listen
  ignores-sigterm  listen on --port (plain TCP, no MySQL) and ignore SIGTERM
  old-version      answer `dolt version` with a version other than the pinned one
  port-thief       never listen, but start a fake MySQL server (fake_mysql.py) on the port from
                   the config, as another user would who binds it first; it records what it is
                   sent in $FAKE_MYSQL_CAPTURE, and its pid in $FAKE_MYSQL_CAPTURE.pid (the test
                   that set it ends it by that pid)
  config-swap      change the config gt-dolt wrote ($FAKE_SWAP: host:ADDR, port:N, metrics:N or
                   data_dir:PATH), as someone who could write its folder would between gt-dolt's
                   write and Dolt's read, then run the real Dolt ($FAKE_REAL_DOLT) on it
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time

mode, args = sys.argv[1], sys.argv[2:]


def flag(name, default=None):
    return args[args.index(name) + 1] if name in args else default


if mode == "old-version" and args[:1] == ["version"]:
    print("dolt version 1.0.0", flush=True)
    sys.exit(0)

if mode == "config-swap":
    real = os.environ["FAKE_REAL_DOLT"]
    if "sql-server" in args:
        path = flag("--config")
        with open(path) as config:
            text = config.read()
        what, _, value = os.environ["FAKE_SWAP"].partition(":")
        if what == "host":
            text = re.sub(r"^(  host: ).*$", rf'\g<1>"{value}"', text, count=1, flags=re.M)
        elif what == "port":
            text = re.sub(r"^(  port: ).*$", rf"\g<1>{value}", text, count=1, flags=re.M)
        elif what == "metrics":
            text += f'metrics:\n  host: "0.0.0.0"\n  port: {value}\n'
        elif what == "data_dir":
            text = re.sub(r"^data_dir: .*$", f'data_dir: "{value}"', text, count=1, flags=re.M)
        with open(path, "w") as config:
            config.write(text)
    with open("/proc/self/cmdline", "rb") as cmdline:  # the wrapper's name, as `exec -a` set it
        name = cmdline.read().split(b"\0")[0].decode()
    os.execv(real, [name, *args])  # argv[0] keeps the fake's name

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

if mode == "port-thief":
    with open(flag("--config")) as config:
        port = re.search(r"^\s+port: (\d+)", config.read(), re.M).group(1)
    fake_mysql = os.path.join(os.path.dirname(__file__), "fake_mysql.py")
    thief = subprocess.Popen(
        ["python3", fake_mysql, port, os.environ["FAKE_MYSQL_CAPTURE"]],  # sys.executable is this wrapper
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    thief.stdout.readline()  # "listening"
    with open(os.environ["FAKE_MYSQL_CAPTURE"] + ".pid", "w") as pid_file:
        pid_file.write(f"{thief.pid}\n")
    print(f"fake dolt: port {port} taken by pid {thief.pid}; never listening", flush=True)
    while True:
        time.sleep(3600)

sys.exit(f"unknown fake mode {mode}")
