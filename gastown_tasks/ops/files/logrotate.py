"""Rotating daemon/dolt.log without an external logrotate; maintenance that never costs the server.

At start (the server is down), an oversized log is only renamed to dolt.log.1: one rename, whatever
its size, so the new server starts at once on a fresh log.  Once the server answers, dolt.log.1 is
compressed into dolt.log.1.gz (the older ones shifted up to dolt.log_keep).  Nothing about it can
stop a start: a planted name, a full disk, anything else skips the step with a note, removes what
it had half written, and leaves dolt.log.1 to be compressed by a later start.

`logs --rotate` (the server may run) copies and truncates in place: the server keeps its
descriptor and writes with O_APPEND, so its next line lands at the new start of the same file (and
`logs -f`, which follows truncation, keeps following).  The copy catches up with the file until a
read comes back empty and truncates right then.  A copy is first written as `.dolt.log.copying.gz`
(removed if anything fails: the log is intact) and renamed `.dolt.log.rotating.gz` just before the
truncate (from then on it is the only copy: kept, never deleted).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from ..errors import GastownError
from ..settings import DoltSettings
from ..town import Town
from . import safefs

CHUNK = 1024 * 1024
LEVEL = 6  # zlib's default: a log compresses nearly as well as at 9, in a third of the time


def rotated_name(town: Town, n: int) -> Path:
    return town.log_file.with_name(f"{town.log_file.name}.{n}.gz")


def pending_name(town: Town) -> Path:
    """The log a start set aside, waiting to be compressed."""
    return town.log_file.with_name(f"{town.log_file.name}.1")


def _copying(town: Town) -> Path:
    return town.daemon_dir / f".{town.log_file.name}.copying.gz"


def _rotating(town: Town) -> Path:
    return town.daemon_dir / f".{town.log_file.name}.rotating.gz"


def _check_names(town: Town, keep: int) -> None:
    """Every name rotation will rename or remove is absent or a plain file of ours: checked before
    the log is touched, so a planted folder or link cannot stop a rotation halfway."""
    for path in [*(rotated_name(town, n) for n in range(1, keep + 1)), pending_name(town), _copying(town)]:
        what = safefs.describe(path)
        if what is not None:
            raise safefs.unsafe(path, what)


def _rename(town: Town, old: Path, new: Path) -> None:
    with safefs.open_dir(town.daemon_dir, root=town.root) as dfd:
        try:
            os.rename(old.name, new.name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except OSError as exc:
            raise safefs.failure(exc, new, "write") from None


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

    return gzip.compress(data, compresslevel=LEVEL, mtime=0)


def _copy_compressed(fd: int, out: int) -> int:
    """Every byte of `fd` from its start, compressed into `out` until a read comes back empty; the
    bytes copied."""
    done = 0
    while chunk := os.pread(fd, CHUNK, done):
        safefs.write_all(out, _gzip_member(chunk))
        done += len(chunk)
    os.fsync(out)
    return done


def _discard(town: Town, path: Path) -> None:
    with contextlib.suppress(GastownError, OSError):
        safefs.remove(path, root=town.root)


def _recover(town: Town) -> str | None:
    """What a rotation cut short left: a half copy (the log is intact) is removed; a copy made just
    before the truncate is the only one, kept under a name of its own."""
    _discard(town, _copying(town))
    staging = _rotating(town)
    if not os.path.lexists(staging):
        return None
    what = safefs.describe(staging)
    if what is not None:
        raise safefs.unsafe(staging, what)
    kept = town.log_file.with_name(f"{town.log_file.name}.recovered-{int(time.time())}.gz")
    _rename(town, staging, kept)
    return f"kept the log of an interrupted rotation as {kept}"


def compress_pending(town: Town, keep: int) -> str | None:
    """Compress the log a start set aside (dolt.log.1) into dolt.log.1.gz; what was done."""
    pending = pending_name(town)
    if not os.path.lexists(pending):
        return None
    _check_names(town, keep)
    copying = _copying(town)
    try:
        with (
            safefs.open_file(pending, root=town.root) as fd,
            safefs.open_file(copying, os.O_WRONLY | os.O_CREAT | os.O_EXCL, root=town.root) as out,
        ):
            done = _copy_compressed(fd, out)
    except FileNotFoundError:
        return None
    except BaseException as exc:
        _discard(town, copying)  # a half copy: dolt.log.1 is intact, a later start tries again
        if isinstance(exc, OSError):
            raise safefs.failure(exc, copying, "compress the old log into") from None
        raise
    _shift(town, keep)
    _rename(town, copying, rotated_name(town, 1))
    _discard(town, pending)
    return f"compressed the old log ({done:,} bytes) into {rotated_name(town, 1).name}, keeping {keep}"


def set_aside_if_due(town: Town, settings: DoltSettings) -> str | None:
    """At start, before the server runs: an oversized log is renamed dolt.log.1 (one rename, whatever
    its size; `compress_pending` compresses it once the server answers).  Never raises: a failure
    is a note, and the start goes on with the log as it is."""
    if not settings.log_max_mb:
        return None
    try:
        with safefs.open_file(town.log_file, root=town.root) as fd:
            size = os.fstat(fd).st_size
        if size <= settings.log_max_mb * 1024 * 1024:
            return None
        if os.path.lexists(pending_name(town)):
            return (
                f"the log is over dolt.log_max_mb, and {pending_name(town).name} still waits to be compressed: "
                "not rotated this time"
            )
        _check_names(town, settings.log_keep)
        _rename(town, town.log_file, pending_name(town))
    except FileNotFoundError:
        return None
    except GastownError as exc:
        return f"the log was not rotated ({exc})"
    return f"rotated the log: the old one ({size:,} bytes) was set aside as {pending_name(town).name}"


def compress_after_start(town: Town, settings: DoltSettings) -> str | None:
    """Once the server answers: compress what a start set aside.  Never raises (a note instead):
    not even Ctrl-C, which ends the compression but not the start that already succeeded."""
    try:
        return compress_pending(town, settings.log_keep)
    except GastownError as exc:
        why = str(exc)
    except KeyboardInterrupt:
        why = "interrupted"
    return f"the old log stays uncompressed as {pending_name(town).name} ({why}); a later start compresses it"


def rotate(town: Town, keep: int) -> str | None:
    """Compress dolt.log into dolt.log.1.gz (keeping `keep` of them) and truncate it; what was done.

    The compressed copy is on disk (fsynced) before the log is truncated, and after the truncate it
    is only ever renamed into place, never deleted: a failure at any step loses no line.  A running
    server's line written between the last read and the truncate is lost: Dolt cannot be asked to
    reopen its log, so copy-and-truncate cannot close that window.
    """
    recovered = _recover(town)
    earlier = compress_pending(town, keep)
    _check_names(town, keep)
    copying, staging = _copying(town), _rotating(town)
    try:
        with safefs.open_file(town.log_file, os.O_RDWR, root=town.root) as fd:
            if os.fstat(fd).st_size == 0:
                return "; ".join(note for note in (earlier, recovered) if note) or None
            try:
                with safefs.open_file(copying, os.O_WRONLY | os.O_CREAT | os.O_EXCL, root=town.root) as out:
                    done = _copy_compressed(fd, out)
            except BaseException:
                _discard(town, copying)  # the log is intact: the half copy goes
                raise
            _rename(town, copying, staging)  # from here on, the only copy of what is truncated
            os.ftruncate(fd, 0)  # right after the last read came back empty
    except FileNotFoundError:
        return "; ".join(note for note in (earlier, recovered) if note) or None
    except OSError as exc:
        raise safefs.failure(exc, town.log_file, "rotate") from None
    _shift(town, keep)
    _rename(town, staging, rotated_name(town, 1))
    said = f"{done:,} bytes into {rotated_name(town, 1).name}, keeping {keep}"
    return "; ".join(note for note in (said, earlier, recovered) if note)
