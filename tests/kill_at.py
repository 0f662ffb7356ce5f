"""Run gt-dolt and signal it (Ctrl-C or kill -9, to itself) at a chosen instant: an interrupt at a step.

Usage:
  python kill_at.py N SIGNAL <gt-dolt args>
      just before its Nth change to the file system: the audit events of calls that change files or
      start processes (os.rename/mkdir/rmdir/remove, shutil.rmtree, an open for writing,
      subprocess.Popen, ctypes calls such as renameat2).  N=0 interrupts nothing.  The number of
      changes seen is written to the file KILL_AT_COUNT names, so a first run with N=0 tells a test
      how many instants there are.
  python kill_at.py --event EVENT MATCH NTH SIGNAL <gt-dolt args>
      just before the NTH audit event EVENT (PEP 578, e.g. shutil.rmtree, gastown_tasks.rename)
      whose arguments contain MATCH ("" matches any).
SIGNAL: INT (Ctrl-C) or KILL (kill -9).  The hook sees each event before it happens and prints
"kill_at: SIG… at …" to stderr as it signals, so a test knows the step was reached, every run.

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

if sys.argv[1] == "--event":
    event, match, target, how, args = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6:]
else:
    event, match, target, how, args = "", "", int(sys.argv[1]), sys.argv[2], sys.argv[3:]
seen = 0
counting = True
busy = False


def _changes(name: str, details: tuple) -> bool:
    if name in CHANGES:
        return True
    if name == "open" and len(details) >= 3:
        path, mode, flags = details[0], details[1], details[2]
        if str(path).endswith(".pyc"):
            return False
        return bool(isinstance(flags, int) and flags & WRITES) or bool(
            isinstance(mode, str) and set(mode) & set("wax+")
        )
    return False


def _counts(name: str, details: tuple) -> bool:
    if event:
        return name == event and match in repr(details)
    return _changes(name, details)


def hook(name: str, details: tuple) -> None:
    global seen, busy
    if busy or not counting:
        return
    busy = True  # repr() and print() below raise audit events of their own
    try:
        if not _counts(name, details):
            return
        seen += 1
        if seen == target:
            print(f"kill_at: SIG{how} at {name} #{target}", file=sys.stderr, flush=True)
            os.kill(os.getpid(), getattr(signal, f"SIG{how}"))
    finally:
        busy = False


def report() -> None:
    global counting
    counting = False
    where = os.environ.get("KILL_AT_COUNT")
    if where:
        with open(where, "w") as out:
            out.write(str(seen))


real_exit = os._exit


def exit_reporting(code: int) -> None:  # in case gt-dolt leaves with os._exit: atexit would not run
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
