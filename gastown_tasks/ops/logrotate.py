"""Rotating daemon/dolt.log without an external logrotate: compress, shift, truncate in place.

The server keeps its descriptor and writes with O_APPEND, so after the truncate its next line
lands at the new start of the same file (and `logs -f`, which follows truncation, keeps
following).  Lines written while the copy is made are copied too: the copy catches up with the
file until a read comes back empty and truncates right then.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from . import safefs
from .settings import DoltSettings
from .town import Town

CHUNK = 1024 * 1024


def rotated_name(town: Town, n: int) -> Path:
    return town.log_file.with_name(f"{town.log_file.name}.{n}.gz")


def _check_names(town: Town, keep: int) -> None:
    """Every name rotation will rename or remove is absent or a plain file of ours: checked before
    the log is touched, so a planted folder or link cannot stop a rotation halfway."""
    for n in range(1, keep + 1):
        path = rotated_name(town, n)
        what = safefs.describe(path)
        if what is not None:
            raise safefs.unsafe(path, what)


def _shift(town: Town, keep: int) -> None:
    """dolt.log.(k).gz -> .(k+1).gz for k = keep-1 .. 1, dropping what falls beyond `keep`."""
    with safefs.open_dir(town.daemon_dir, root=town.root) as dfd:
        oldest = rotated_name(town, keep)
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(oldest.name, dir_fd=dfd)
            for n in range(keep - 1, 0, -1):
                with contextlib.suppress(FileNotFoundError):
                    os.rename(
                        rotated_name(town, n).name, rotated_name(town, n + 1).name, src_dir_fd=dfd, dst_dir_fd=dfd
                    )
        except OSError as exc:
            raise safefs.failure(exc, oldest.parent, "rotate the logs in") from None


def _gzip_member(data: bytes) -> bytes:
    import gzip  # only when a log is rotated

    return gzip.compress(data, mtime=0)


def _recover(town: Town, staging: Path) -> str | None:
    """A copy left by a rotation that failed after the truncate: keep it under a name of its own."""
    if not os.path.lexists(staging):
        return None
    what = safefs.describe(staging)
    if what is not None:
        raise safefs.unsafe(staging, what)
    kept = town.log_file.with_name(f"{town.log_file.name}.recovered-{int(time.time())}.gz")
    with safefs.open_dir(town.daemon_dir, root=town.root) as dfd:
        os.rename(staging.name, kept.name, src_dir_fd=dfd, dst_dir_fd=dfd)
    return f"kept the log of an interrupted rotation as {kept}"


def rotate(town: Town, keep: int) -> str | None:
    """Compress dolt.log into dolt.log.1.gz (keeping `keep` of them) and truncate it; what was done.

    The compressed copy is on disk (fsynced) before the log is truncated, and it is only ever
    renamed into place, never deleted: a failure at any step loses no line.  A running server's
    line written between the last read and the truncate is lost: Dolt cannot be asked to reopen
    its log, so copy-and-truncate cannot close that window (the rotation at start, before the
    server runs, loses nothing).
    """
    staging = town.daemon_dir / f".{town.log_file.name}.rotating.gz"
    recovered = _recover(town, staging)
    _check_names(town, keep)
    try:
        with safefs.open_file(town.log_file, os.O_RDWR, root=town.root) as fd:
            if os.fstat(fd).st_size == 0:
                return recovered
            with safefs.open_file(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, root=town.root) as out:
                done = 0
                while chunk := os.pread(fd, CHUNK, done):
                    safefs.write_all(out, _gzip_member(chunk))
                    done += len(chunk)
                os.fsync(out)
                os.ftruncate(fd, 0)  # right after the last read came back empty
    except FileNotFoundError:
        return recovered
    except OSError as exc:
        raise safefs.failure(exc, town.log_file, "rotate") from None
    _shift(town, keep)
    with safefs.open_dir(town.daemon_dir, root=town.root) as dfd:
        try:
            os.rename(staging.name, rotated_name(town, 1).name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except OSError as exc:
            raise safefs.failure(exc, rotated_name(town, 1), "write") from None
    said = f"{done:,} bytes into {rotated_name(town, 1).name}, keeping {keep}"
    return f"{said}; {recovered}" if recovered else said


def rotate_if_due(town: Town, settings: DoltSettings) -> str | None:
    """Rotate at start when the log is over dolt.log_max_mb (0 = never)."""
    if not settings.log_max_mb:
        return None
    try:
        with safefs.open_file(town.log_file, root=town.root) as fd:
            size = os.fstat(fd).st_size
    except FileNotFoundError:
        return None
    if size <= settings.log_max_mb * 1024 * 1024:
        return None
    return rotate(town, settings.log_keep)
