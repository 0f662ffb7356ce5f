"""Files in a town, opened the way a shared and hostile workspace demands.

Anything in a town may have been planted by someone else, and gt-dolt may run as a more privileged
user than whoever planted it.  So every file the package reads or writes in a town is reached by a
walk of folder descriptors from a trusted root (the town), each step opened with O_NOFOLLOW; files
are opened with O_NOFOLLOW | O_NONBLOCK (a FIFO never blocks) and used only when `fstat` shows a
regular file, owned by us, with a single name; reads are bounded; new files are created with
O_EXCL and an explicit mode; replacements are atomic renames inside the same folder descriptor.
A planted symlink, FIFO, device, folder, hard link or someone else's file is reported by path
(`UnsafeFile`) and nothing is written through it.  File-system failures (full, read-only,
permissions, names too long) become one `FileFailure` line naming the path.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from ..errors import FileFailure, Remedy, UnsafeFile, UnsafeFolder

FILE_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

_WHY = {
    errno.ENOSPC: "no space left on the device; free some space",
    errno.EDQUOT: "the disk quota is exhausted; free some space",
    errno.EROFS: "the file system is read-only; make it writable",
    errno.EACCES: "permission denied; fix the permissions",
    errno.EPERM: "operation not permitted; fix the permissions or ownership",
    errno.ENAMETOOLONG: "the path is too long; use a shorter folder",
    errno.ENOTDIR: "a part of the path is not a folder; move that file aside",
    errno.EISDIR: "it is a folder; move it aside",
    errno.ELOOP: "it is a symlink; remove it",
    errno.EMFILE: "too many open files; close some programs",
    errno.EIO: "an I/O error; check the disk",
}


def failure(exc: OSError, path: object, doing: str) -> FileFailure:
    """One line for an OSError: what we were doing, where, and what to do about it."""
    why = _WHY.get(exc.errno or 0) or f"{exc.strerror or exc}"
    return FileFailure(f"cannot {doing} {path}: {why}, then retry")


def _kind(st: os.stat_result) -> str | None:
    """Why a stat result is not a file we may use, or None when it is one."""
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        return "a symlink"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    if st.st_uid != os.geteuid():
        return f"owned by uid {st.st_uid}, not by you (uid {os.geteuid()})"
    if st.st_nlink != 1:
        return f"a hard link ({st.st_nlink} names)"
    return None


def _describe_at(dir_fd: int, name: str) -> str | None:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode):
        try:
            return f"a symlink to {os.readlink(name, dir_fd=dir_fd)}"
        except OSError:
            return "a symlink"
    return _kind(st)


def describe(path: Path) -> str | None:
    """What is wrong with the thing at `path` as a file of ours; None for a usable file or nothing."""
    try:
        with open_dir(path.parent) as dfd:
            return _describe_at(dfd, path.name)
    except (UnsafeFile, FileFailure, OSError):
        return None


def unsafe(path: object, what: str) -> UnsafeFile:
    return UnsafeFile(f"{path} is {what}; {Remedy.remove(path)}")


def _parts(path: Path, root: Path | None) -> tuple[Path, tuple[str, ...]]:
    path = Path(os.path.abspath(path))
    base = Path(os.path.abspath(root)) if root is not None else path.parent
    if path == base:
        return base, ()
    return base, path.relative_to(base).parts


@contextmanager
def open_dir(path: Path, *, root: Path | None = None, create: bool = False, mode: int = 0o755) -> Iterator[int]:
    """A descriptor of folder `path`, every component below `root` opened without following links.

    `root` (default: the parent of `path`) is trusted as it is: the user chose it (the town).
    """
    base, parts = _parts(path, root)
    try:
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENOENT and not create:
            raise
        raise failure(exc, base, "open the folder") from None
    here = base
    try:
        for part in parts:
            here = here / part
            try:
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(part, mode, dir_fd=fd)
                except FileExistsError:
                    pass  # made by someone else in between: opened (and checked) below
                except OSError as exc:
                    raise failure(exc, here, "create the folder") from None
                child = _open_child_dir(fd, part, here)
            except OSError as exc:
                raise _dir_problem(fd, part, here, exc) from None
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _open_child_dir(fd: int, part: str, here: Path) -> int:
    try:
        return os.open(part, DIR_FLAGS, dir_fd=fd)
    except OSError as exc:
        raise _dir_problem(fd, part, here, exc) from None


def _dir_problem(fd: int, part: str, here: Path, exc: OSError) -> Exception:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        what = _describe_at(fd, part)
        if what == "a folder":  # it was swapped while we opened it
            return UnsafeFolder(
                f"{here} changed while it was opened (a link, then a folder?); retry, and check who "
                "else writes in the town"
            )
        if what is None or what.startswith(("owned by", "a hard link")):
            what = "a file"
        return UnsafeFolder(
            f"{here} is {what}, not a folder; gt-dolt works only in real folders of the town: "
            f"move it aside (mv {here} {here}.bak), then retry"
        )
    return failure(exc, here, "open the folder")


def ensure_private_dir(path: Path, *, root: Path | None = None, mode: int = 0o700) -> None:
    """A real folder of ours that no other user can write in (made with `mode` when missing): the
    Dolt server writes there by path, so whoever could rename entries in it could send those
    writes through a link of theirs."""
    with open_dir(path, root=root, create=True, mode=mode) as fd:
        st = os.fstat(fd)
    if st.st_uid != os.geteuid():
        raise UnsafeFolder(
            f"{path} belongs to uid {st.st_uid}, not to you: the server would write there by path; "
            f"move it aside (mv {path} {path}.bak), then retry"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeFolder(
            f"{path} is writable by other users, who could swap what the server writes there for a link; "
            f"chmod go-w {path}, then retry"
        )


def require_dir(path: Path, *, root: Path | None = None) -> None:
    """`path` is a real folder (not a link, not a file) reached without following links."""
    with open_dir(path, root=root):
        pass


def ensure_dir(path: Path, *, root: Path | None = None, mode: int = 0o755) -> None:
    with open_dir(path, root=root, create=True, mode=mode):
        pass


def _check_fd(fd: int, path: object) -> os.stat_result:
    st = os.fstat(fd)
    what = _kind(st)
    if what is not None:
        raise unsafe(path, what)
    return st


def _open_in(dfd: int, path: Path, flags: int, mode: int) -> int:
    try:
        fd = os.open(path.name, flags | FILE_FLAGS, mode, dir_fd=dfd)
    except FileNotFoundError:
        raise
    except OSError as exc:
        what = _describe_at(dfd, path.name)
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.EWOULDBLOCK) and what:
            raise unsafe(path, what) from None
        raise failure(exc, path, "open") from None
    try:
        _check_fd(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def open_file(path: Path, flags: int = os.O_RDONLY, *, root: Path | None = None, mode: int = 0o600) -> Iterator[int]:
    """A descriptor of a regular file of ours with one name; FileNotFoundError when absent."""
    with open_dir(path.parent, root=root, create=bool(flags & os.O_CREAT)) as dfd:
        fd = _open_in(dfd, path, flags, mode)
    try:
        yield fd
    finally:
        os.close(fd)


def read_fd(fd: int, limit: int, path: object) -> bytes:
    """At most `limit` bytes from the current offset; a larger file is refused, not read."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = os.read(fd, min(64 * 1024, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise UnsafeFile(
                f"{path} is larger than {limit:,} bytes, more than gt-dolt ever writes there; {Remedy.remove(path)}"
            )


def read_bytes(path: Path, limit: int, *, root: Path | None = None) -> bytes | None:
    """The whole file (at most `limit` bytes), or None when it (or its folder) does not exist."""
    try:
        with open_file(path, root=root) as fd:
            try:
                return read_fd(fd, limit, path)
            except OSError as exc:
                raise failure(exc, path, "read") from None
    except FileNotFoundError:
        return None


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600, root: Path | None = None) -> None:
    """Replace `path` with `data` in one rename: readers see the old file or the new, never half.

    An existing `path` that is not a plain file of ours is reported and left as it is.
    """
    with open_dir(path.parent, root=root, create=True) as dfd:
        what = _describe_at(dfd, path.name)
        if what is not None:
            raise unsafe(path, what)
        tmp = f".{path.name}.{os.urandom(6).hex()}.tmp"
        created = False
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | FILE_FLAGS, mode, dir_fd=dfd)
            created = True
            try:
                os.fchmod(fd, mode)  # the umask must not widen or narrow what we mean
                write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path.name, src_dir_fd=dfd, dst_dir_fd=dfd)
            created = False
            os.fsync(dfd)
        except OSError as exc:
            raise failure(exc, path, "write") from None
        finally:
            if created:
                with suppress(OSError):
                    os.unlink(tmp, dir_fd=dfd)


def remove(path: Path, *, root: Path | None = None) -> bool:
    """Remove a plain file of ours; False when there is none.  Anything else is reported, kept."""
    try:
        with open_dir(path.parent, root=root) as dfd:
            try:
                st = os.stat(path.name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                return False
            what = _describe_at(dfd, path.name) if _kind(st) else None
            if what is not None:
                raise unsafe(path, what)
            try:
                os.unlink(path.name, dir_fd=dfd)
            except FileNotFoundError:
                return False
            except OSError as exc:
                raise failure(exc, path, "remove") from None
            return True
    except FileNotFoundError:
        return False


@contextmanager
def open_append(path: Path, *, mode: int = 0o600, root: Path | None = None) -> Iterator[int]:
    """An O_APPEND descriptor of a private file of ours (created `mode`, made `mode` if wider)."""
    try:
        with open_file(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, root=root, mode=mode) as fd:
            if stat.S_IMODE(os.fstat(fd).st_mode) != mode:
                os.fchmod(fd, mode)
            yield fd
    except FileNotFoundError as exc:
        raise failure(exc, path, "create") from None
    except OSError as exc:
        raise failure(exc, path, "write") from None
