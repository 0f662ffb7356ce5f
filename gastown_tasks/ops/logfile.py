"""Reading daemon/dolt.log from the end, efficiently, in Python (no `tail`)."""

from __future__ import annotations

import os
from pathlib import Path

CHUNK = 64 * 1024


def open_log_for_append(path: Path) -> int:
    """An O_APPEND descriptor for the server's output; the log is private (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def last_lines(path: Path, count: int, start: int = 0) -> list[str]:
    """The last `count` lines of the file after byte offset `start`, reading backwards in chunks."""
    if count <= 0:
        return []
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the `with` below
    except FileNotFoundError:
        return []
    with handle:
        end = handle.seek(0, os.SEEK_END)
        pos = end
        data = b""
        while pos > start and data.count(b"\n") <= count:
            step = min(CHUNK, pos - start)
            pos -= step
            handle.seek(pos)
            data = handle.read(step) + data
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[-count:]


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
