"""Building a folder beside its final place and renaming it in whole: the old state or the new.

A database that appears in `.dolt-data` is served by the next start and listed by every command,
so it must never appear half made.  Whatever builds one (init-rig on disk, a migration's copy
across file systems, a restore) builds it here first:

    <parent>/.staging/<name>.<token>/<name>     built, checked, then
    <parent>/<name>                             one rename, refused if anything is there already

The rig scan ignores dot folders, and Dolt serves only folders that hold `.dolt` directly, so a
database in `.staging/<name>.<token>/` is neither listed nor served.  A staged folder is never the
only copy of anything (callers remove a source only after the commit), so what a killed run leaves
in `.staging` is always disposable: `sweep` removes it.  Stage and sweep only while holding the
town lock: a sweep cannot tell another live command's stage from a dead one's.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import secrets
import shutil
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from ..errors import FileFailure, GastownError
from . import safefs

STAGING = ".staging"
STAGING_MODE = 0o700
# What earlier versions staged directly in .dolt-data (tempfile.mkdtemp names): `.init-<rig>-…` holds
# a database at the top and would be served as a database of that name; both are disposable.
LEGACY = re.compile(r"\.(init|migrate)-[A-Za-z0-9_-]{1,64}-[a-z0-9_]{8}")
# What `discard` renamed away and had not finished deleting when it was killed.
DISCARDED = re.compile(r"\.discarded-.{1,200}-[0-9a-f]{12}")
RENAME_NOREPLACE = 1

_renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)


def rename_noreplace(src_fd: int, src: str, dst_fd: int, dst: str) -> None:
    """rename(2) that fails with FileExistsError instead of replacing `dst` (an empty folder would
    otherwise be replaced silently).  Where the kernel or file system lacks RENAME_NOREPLACE, a
    check just before a plain rename narrows the race to what the town lock leaves open.  Raises
    the audit event `gastown_tasks.rename` first, as os.rename raises its own, so a test can cut a
    command short at exactly this step."""
    sys.audit("gastown_tasks.rename", src, dst)
    if _renameat2 is not None:
        if _renameat2(src_fd, os.fsencode(src), dst_fd, os.fsencode(dst), RENAME_NOREPLACE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.ENOSYS, errno.EINVAL):
            raise OSError(code, os.strerror(code), dst)
    try:
        os.stat(dst, dir_fd=dst_fd, follow_symlinks=False)
    except FileNotFoundError:
        os.rename(src, dst, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
        return
    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dst)


class Stage:
    """A folder being built for `<parent>/<name>`; `commit()` puts it there in one rename."""

    def __init__(self, parent: Path, name: str, token: str, root: Path | None) -> None:
        self.parent = parent
        self.name = name
        self.root = root
        self.folder = parent / STAGING / f"{name}.{token}"  # exists, empty: build `path` in it
        self.committed = False

    @property
    def path(self) -> Path:
        """What the caller builds (it does not exist yet: copytree or `dolt backup restore` make it)."""
        return self.folder / self.name

    def commit(self) -> None:
        """Rename `path` to `<parent>/<name>`; FileExistsError (nothing changed) when that exists."""
        with (
            safefs.open_dir(self.folder, root=self.root) as src_fd,
            safefs.open_dir(self.parent, root=self.root) as dst_fd,
        ):
            st = os.stat(self.name, dir_fd=src_fd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                raise FileFailure(f"{self.path} is not a folder; nothing was put in place")
            rename_noreplace(src_fd, self.name, dst_fd, self.name)
            os.fsync(dst_fd)
        self.committed = True


@contextmanager
def staged(parent: Path, name: str, *, root: Path | None = None) -> Iterator[Stage]:
    """A Stage for `<parent>/<name>`; whatever is left of it when the block ends is removed.

    The caller builds `stage.path`, checks it, then calls `stage.commit()`.  An exception (Ctrl-C
    included) before the commit leaves `<parent>` as it was.
    """
    token = secrets.token_hex(6)
    with safefs.open_dir(parent / STAGING, root=root, create=True, mode=STAGING_MODE) as fd:
        _private(fd, parent / STAGING)
        try:
            os.mkdir(f"{name}.{token}", STAGING_MODE, dir_fd=fd)
        except OSError as exc:
            raise safefs.failure(exc, parent / STAGING, "stage a folder in") from None
    stage = Stage(parent, name, token, root)
    try:
        yield stage
    finally:
        _remove(parent / STAGING, stage.folder.name, root)
        with suppress(OSError, GastownError), safefs.open_dir(parent, root=root) as fd:
            os.rmdir(STAGING, dir_fd=fd)  # only when nothing else is staged there


def remove_tree(dir_fd: int, name: str) -> None:
    """Delete folder `name` of the folder `dir_fd` holds, never following a link inside it: through
    the pinned descriptor, with shutil's descriptor-based rmtree (which refuses a link at the top)."""
    shutil.rmtree(f"/proc/self/fd/{dir_fd}/{name}")


def _private(fd: int, where: Path) -> None:
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise safefs.unsafe(where, "not a private folder of yours (others could swap what is staged there)")


def _remove(folder: Path, entry: str, root: Path | None) -> None:
    """Remove `folder/entry` without following any link in it."""
    with suppress(FileNotFoundError), safefs.open_dir(folder, root=root) as fd:
        st = os.stat(entry, dir_fd=fd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            remove_tree(fd, entry)
        else:
            os.unlink(entry, dir_fd=fd)


def discard(dir_fd: int, name: str) -> None:
    """Remove folder `name` (in the folder `dir_fd` holds) as one step: a rename to a hidden name
    makes it gone at once, whole; the deletion follows.  A kill in between leaves a hidden
    `.discarded-…` folder that `sweep` of that folder removes."""
    trash = f".discarded-{name}-{secrets.token_hex(6)}"
    os.rename(name, trash, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    os.fsync(dir_fd)
    remove_tree(dir_fd, trash)


def sweep(parent: Path, *, root: Path | None = None) -> list[Path]:
    """Remove what killed runs left staged in `parent` (call it holding the town lock); the paths
    removed.  Only folders of ours are removed; anything else is left for doctor to name."""
    removed: list[Path] = []
    try:
        with safefs.open_dir(parent, root=root) as fd:
            names = [n for n in os.listdir(fd) if n == STAGING or LEGACY.fullmatch(n) or DISCARDED.fullmatch(n)]
            for name in names:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
                    continue
                if name == STAGING:
                    removed += _sweep_staging(parent / STAGING, root)
                else:
                    remove_tree(fd, name)
                    removed.append(parent / name)
    except FileNotFoundError:
        return removed
    except OSError as exc:
        raise safefs.failure(exc, parent, "clean the staging area of") from None
    return removed


def _sweep_staging(staging: Path, root: Path | None) -> list[Path]:
    removed = []
    with safefs.open_dir(staging, root=root) as fd:
        for entry in os.listdir(fd):
            st = os.stat(entry, dir_fd=fd, follow_symlinks=False)
            if st.st_uid != os.geteuid():
                continue
            if stat.S_ISDIR(st.st_mode):
                remove_tree(fd, entry)
            else:
                os.unlink(entry, dir_fd=fd)
            removed.append(staging / entry)
    return removed


def leftovers(parent: Path, *, root: Path | None = None) -> list[Path]:
    """What a sweep would remove (read only: for doctor and dry runs)."""
    found: list[Path] = []
    try:
        with safefs.open_dir(parent, root=root) as fd:
            names = os.listdir(fd)
        found += [parent / name for name in names if LEGACY.fullmatch(name) or DISCARDED.fullmatch(name)]
        if STAGING in names:
            with safefs.open_dir(parent / STAGING, root=root) as fd:
                found += [parent / STAGING / entry for entry in os.listdir(fd)]
    except (OSError, GastownError):
        pass
    return sorted(found)
