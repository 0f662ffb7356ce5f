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
PATH_EVENTS = {
    "os.remove": (0,),
    "os.rmdir": (0,),
    "os.mkdir": (0,),
    "os.chmod": (0,),
    "os.chown": (0,),
    "os.truncate": (0,),
    "os.utime": (0,),
    "os.mkfifo": (0,),
    "os.mknod": (0,),
    "os.rename": (0, 1),  # os.replace raises os.rename too
    "os.symlink": (1,),
    "os.link": (1,),
    "shutil.rmtree": (0,),
    "shutil.move": (0, 1),
    "shutil.copyfile": (1,),
    "shutil.copytree": (1,),
}
PROCESS_EVENTS = ("subprocess.Popen", "os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork")
SIGNAL_EVENTS = ("os.kill", "os.killpg", "signal.pthread_kill")

# Pids the package must never signal: the hook refuses (raises) after logging the attempt.
PROTECTED = {int(pid) for pid in os.environ.get("GT_AUDIT_PROTECT", "").split(",") if pid.strip()}

_fd = os.open(os.environ["GT_AUDIT_LOG"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
_busy = threading.local()


def _path(value: object) -> str | None:
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
            path, mode, flags = (list(args) + [None, None, None])[:3]
            writes = (isinstance(flags, int) and flags & WRITE_FLAGS) or (
                isinstance(mode, str) and any(ch in mode for ch in "wax+")
            )
            where = _path(path)
            if writes and where:
                _record({"event": "open-write", "paths": [where]})
        elif event in PATH_EVENTS:
            paths = [_path(args[i]) for i in PATH_EVENTS[event] if i < len(args)]
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


sys.addaudithook(_hook)
sys.argv = ["gt-dolt", *sys.argv[1:]]
runpy.run_module("gastown_tasks", run_name="__main__", alter_sys=True)
