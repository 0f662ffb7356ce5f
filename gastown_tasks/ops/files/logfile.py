"""Reading daemon/dolt.log: a bounded tail, and following it from the same open file.

Bounds hold on any file: the tail reads at most TAIL_BYTES from the end and cuts a line at
LINE_MAX, so a 256 MiB log without a newline costs one 4 MiB read.  Following continues on the
descriptor the tail read, so no line written in between is lost; truncation (copytruncate, our own
rotation) and replacement (rename + create) are both followed.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from . import safefs

TAIL_BYTES = 4 * 1024 * 1024
LINE_MAX = 64 * 1024
POLL_SECONDS = 0.1  # how often a quiet log is looked at again; there is no portable file event
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """Terminal control characters shown as \\xNN, so a log line cannot drive the terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _decode(line: bytes) -> str:
    if len(line) > LINE_MAX:
        return (
            line[:LINE_MAX].decode("utf-8", errors="replace")
            + f" [... line cut at {LINE_MAX:,} of {len(line):,} bytes]"
        )
    return line.decode("utf-8", errors="replace")


def tail_fd(fd: int, count: int, start: int = 0) -> tuple[list[str], int]:
    """The last `count` lines after byte offset `start`, and the offset where the file ended."""
    end = os.lseek(fd, 0, os.SEEK_END)
    if count <= 0 or end <= start:
        return [], max(end, start)
    low = max(start, end - TAIL_BYTES)
    pos = end
    data = b""
    while pos > low and data.count(b"\n", 0, len(data) - 1) < count:
        step = min(256 * 1024, pos - low)
        pos -= step
        data = os.pread(fd, step, pos) + data
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if pos > start and len(lines) > 1:
        lines = lines[1:]  # the first piece starts mid-line
    return [_decode(line) for line in lines[-count:]], end


def last_lines(path: Path, count: int, start: int = 0, *, root: Path | None = None) -> list[str]:
    try:
        with safefs.open_file(path, root=root) as fd:
            return tail_fd(fd, count, start)[0]
    except FileNotFoundError:
        return []


def read_since(path: Path, offset: int, *, root: Path | None = None, limit: int = TAIL_BYTES) -> str:
    """What was written after `offset` (at most `limit` bytes, the newest ones)."""
    try:
        with safefs.open_file(path, root=root) as fd:
            end = os.lseek(fd, 0, os.SEEK_END)
            start = max(offset, end - limit)
            return os.pread(fd, max(0, end - start), start).decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def file_size(path: Path, *, root: Path | None = None) -> int:
    try:
        with safefs.open_file(path, root=root) as fd:
            return os.fstat(fd).st_size
    except FileNotFoundError:
        return 0


def _lines_from(fd: int, pending: bytearray) -> Iterator[str]:
    while True:
        chunk = os.read(fd, 64 * 1024)
        if not chunk:
            return
        pending += chunk
        *lines, rest = bytes(pending).split(b"\n")
        pending[:] = rest
        for line in lines:
            yield _decode(line)
        if len(pending) > LINE_MAX:  # a writer that never ends a line must not fill memory
            yield _decode(bytes(pending))
            pending.clear()


def tail_and_follow(
    path: Path,
    count: int,
    *,
    root: Path | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    poll: float = POLL_SECONDS,
) -> Iterator[str]:
    """The last `count` lines, then every new line, read from one descriptor (none is lost)."""
    fd: int | None = None
    pending = bytearray()
    try:
        while fd is None:
            try:
                with safefs.open_file(path, root=root) as opened:
                    fd = os.dup(opened)
            except FileNotFoundError:
                if should_stop():
                    return
                time.sleep(poll)
                continue
            lines, end = tail_fd(fd, count)
            os.lseek(fd, end, os.SEEK_SET)
            yield from lines
        while not should_stop():
            got = False
            for line in _lines_from(fd, pending):
                got = True
                yield line
            if got:
                continue
            here = os.lseek(fd, 0, os.SEEK_CUR)
            if os.fstat(fd).st_size < here:
                os.lseek(fd, 0, os.SEEK_SET)  # truncated in place
                pending.clear()
                continue
            replaced = _replacement(path, root, os.fstat(fd).st_ino)
            if replaced is not None:
                os.close(fd)  # the old file is drained: follow the new one from its start
                fd, pending = replaced, bytearray()
                continue
            time.sleep(poll)
    finally:
        if fd is not None:
            os.close(fd)


def _replacement(path: Path, root: Path | None, inode: int) -> int | None:
    try:
        with safefs.open_file(path, root=root) as opened:
            if os.fstat(opened).st_ino != inode:
                return os.dup(opened)
    except FileNotFoundError:
        pass
    return None
