"""Run gt-dolt under a Python audit hook (PEP 578) that records what the package itself does.

Usage: python audited_gt_dolt.py <gt-dolt args>   (GT_AUDIT_LOG=<file> receives JSON lines)

Every file change (open for writing, remove, rename/replace, mkdir, rmdir, chmod, rmtree, ...),
every process started and every signal sent by this Python process is logged with absolute
paths.  GT_AUDIT_PROTECT=<pid,...> makes a signal to those pids fail after it is logged.
Dolt is a separate (Go) program, so what it writes in its own .dolt/ folders is not here: the
log is exactly the package's effect.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import threading

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
# event -> ((path argument, its dir_fd argument or None), ...): the package works through folder
# descriptors, so a relative path is resolved against the folder its descriptor names.
PATH_EVENTS = {
    "os.remove": ((0, 1),),
    "os.rmdir": ((0, 1),),
    "os.mkdir": ((0, 2),),
    "os.chmod": ((0, 2),),
    "os.chown": ((0, 3),),
    "os.truncate": ((0, None),),
    "os.utime": ((0, 3),),
    "os.mkfifo": ((0, 2),),
    "os.mknod": ((0, 3),),
    "os.rename": ((0, 2), (1, 3)),  # os.replace raises os.rename too
    "os.symlink": ((1, 2),),
    "os.link": ((1, 3),),
    "shutil.rmtree": ((0, 1),),
    "shutil.move": ((0, None), (1, None)),
    "shutil.copyfile": ((1, None),),
    "shutil.copytree": ((1, None),),
}
PROCESS_EVENTS = ("subprocess.Popen", "os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork")
SIGNAL_EVENTS = ("os.kill", "os.killpg", "signal.pthread_kill")

# Pids the package must never signal: the hook refuses (raises) after logging the attempt.
PROTECTED = {int(pid) for pid in os.environ.get("GT_AUDIT_PROTECT", "").split(",") if pid.strip()}

_fd = os.open(os.environ["GT_AUDIT_LOG"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
_busy = threading.local()


def _path(value: object, dir_fd: object = None) -> str | None:
    if isinstance(value, str | bytes | os.PathLike) and isinstance(dir_fd, int) and dir_fd >= 0:
        text = os.fsdecode(os.fspath(value))
        if not os.path.isabs(text):
            try:
                return os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), text)
            except OSError:
                return None
    if isinstance(value, int):
        try:
            return os.readlink(f"/proc/self/fd/{value}")
        except OSError:
            return None
    if isinstance(value, bytes):
        value = os.fsdecode(value)
    if isinstance(value, str | os.PathLike):
        return os.path.abspath(os.fspath(value))
    return None


def _record(entry: dict) -> None:
    os.write(_fd, (json.dumps(entry, default=repr) + "\n").encode())


def _hook(event: str, args: tuple) -> None:
    if getattr(_busy, "on", False):
        return
    _busy.on = True
    try:
        if event == "open":
            if getattr(_busy, "in_os_open", False):
                return  # recorded by the os.open wrapper below, which knows the folder descriptor
            path, mode, flags = (list(args) + [None, None, None])[:3]
            writes = (isinstance(flags, int) and flags & WRITE_FLAGS) or (
                isinstance(mode, str) and any(ch in mode for ch in "wax+")
            )
            where = _path(path)
            if writes and where:
                _record({"event": "open-write", "paths": [where]})
        elif event in PATH_EVENTS:
            paths = [
                _path(args[i], args[d] if d is not None and d < len(args) else None)
                for i, d in PATH_EVENTS[event]
                if i < len(args)
            ]
            _record({"event": event, "paths": [p for p in paths if p]})
        elif event == "subprocess.Popen":  # (executable, args, cwd, env); shell=True shows as sh -c
            argv = args[1]
            argv = [os.fsdecode(a) for a in argv] if isinstance(argv, list | tuple) else repr(argv)
            _record({"event": event, "executable": repr(args[0]), "argv": argv})
        elif event in PROCESS_EVENTS:
            _record({"event": event, "args": [repr(a) for a in args[:2]]})
        elif event in SIGNAL_EVENTS and len(args) >= 2 and args[1] != 0:
            _record({"event": event, "pid": args[0], "signal": int(args[1])})
            if args[0] in PROTECTED:
                raise PermissionError(f"audit: refused {event} to protected pid {args[0]}")
    finally:
        _busy.on = False


_real_os_open = os.open


def _os_open(path, flags, mode=0o777, *, dir_fd=None):  # type: ignore[no-untyped-def]
    if flags & WRITE_FLAGS:
        where = _path(path, dir_fd)
        if where:
            _record({"event": "open-write", "paths": [where]})
    _busy.in_os_open = True
    try:
        return _real_os_open(path, flags, mode, dir_fd=dir_fd)
    finally:
        _busy.in_os_open = False


os.open = _os_open
sys.addaudithook(_hook)
sys.argv = ["gt-dolt", *sys.argv[1:]]
runpy.run_module("gastown_tasks", run_name="__main__", alter_sys=True)
