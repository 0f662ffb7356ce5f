"""Run gt-dolt and interrupt it just before its Nth change to the file system: an instant of choice.

Usage: python kill_at.py N SIGNAL <gt-dolt args>      SIGNAL: KILL (kill -9) or INT (Ctrl-C)

The changes counted are the audit events of the calls that change files or start processes:
os.rename/mkdir/rmdir/remove, shutil.rmtree, an open for writing, subprocess.Popen and ctypes
calls (renameat2).  N=0 interrupts nothing.  The number of changes seen is written to the file
KILL_AT_COUNT names, so a first run with N=0 tells a test how many instants there are.

KILL_AT_EXDEV=1 makes every move of a database into .dolt-data fail with EXDEV, as across file
systems, so that the copy path is the one interrupted.
"""

from __future__ import annotations

import atexit
import errno
import os
import runpy
import signal
import sys

target, how, args = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
SIGNALS = {"KILL": signal.SIGKILL, "INT": signal.SIGINT}
WRITES = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
CHANGES = {
    "os.rename",
    "os.mkdir",
    "os.rmdir",
    "os.remove",
    "shutil.rmtree",
    "subprocess.Popen",
    "ctypes.call_function",
}
seen = 0
counting = True


def _changes(event: str, details: tuple) -> bool:
    if event in CHANGES:
        return True
    if event == "open" and len(details) >= 3:
        path, mode, flags = details[0], details[1], details[2]
        if str(path).endswith(".pyc"):
            return False
        return bool(isinstance(flags, int) and flags & WRITES) or bool(
            isinstance(mode, str) and set(mode) & set("wax+")
        )
    return False


def hook(event: str, details: tuple) -> None:
    global seen
    if not counting or not _changes(event, details):
        return
    seen += 1
    if seen == target:
        os.kill(os.getpid(), SIGNALS[how])


def report() -> None:
    global counting
    counting = False
    where = os.environ.get("KILL_AT_COUNT")
    if where:
        with open(where, "w") as out:
            out.write(str(seen))


real_exit = os._exit


def exit_reporting(code: int) -> None:  # gt-dolt leaves with os._exit: atexit would not run
    report()
    real_exit(code)


os._exit = exit_reporting  # type: ignore[assignment]


if os.environ.get("KILL_AT_EXDEV") == "1":
    from gastown_tasks.ops.rigs import migrate

    def across_file_systems(*_: object) -> None:
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    migrate._rename_into_place = across_file_systems  # type: ignore[assignment]

atexit.register(report)
sys.addaudithook(hook)
sys.argv = ["gt-dolt", *args]
runpy.run_module("gastown_tasks", run_name="__main__", alter_sys=True)
