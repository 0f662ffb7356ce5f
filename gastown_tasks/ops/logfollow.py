"""Following daemon/dolt.log as it grows, across truncation and rotation (no `tail -f`)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

POLL_SECONDS = 0.1  # how often a quiet log is looked at again; there is no portable file event


def follow(
    path: Path,
    *,
    from_end: bool = True,
    should_stop: Callable[[], bool] = lambda: False,
    poll: float = POLL_SECONDS,
) -> Iterator[str]:
    """Yield each new complete line of `path`.

    Truncated in place (copytruncate, Gas Town's rotation plugin): read again from the start.
    Replaced by a new file (rename + create): finish the old one, then follow the new one.
    A missing file is waited for.
    """
    handle = None
    inode = None
    pending = b""
    first = True
    try:
        while not should_stop():
            if handle is None:
                try:
                    handle = open(path, "rb")  # noqa: SIM115 - kept open across iterations
                except FileNotFoundError:
                    first = False  # a file that appears later is read from its start
                    time.sleep(poll)
                    continue
                inode = os.fstat(handle.fileno()).st_ino
                if first and from_end:
                    handle.seek(0, os.SEEK_END)
                first = False
            chunk = handle.read(64 * 1024)
            if chunk:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode("utf-8", errors="replace")
                continue
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
            if current is not None and current.st_ino != inode:
                handle.close()  # rotated: the old file is drained, switch to the new one
                handle, pending = None, b""
                continue
            if current is not None and current.st_size < handle.tell():
                handle.seek(0)  # truncated in place
                pending = b""
                continue
            time.sleep(poll)
    finally:
        if handle is not None:
            handle.close()
