"""Run gt-dolt and signal it (Ctrl-C or kill -9, to itself) at a chosen step: an interrupt at an instant.

Usage: python kill_at.py EVENT MATCH NTH SIGNAL <gt-dolt args>
  EVENT   a Python audit event (PEP 578), e.g. shutil.rmtree, subprocess.Popen, ctypes.dlsym
  MATCH   text its arguments must contain ("" matches any)
  NTH     which matching event (1 = the first)
  SIGNAL  INT (Ctrl-C) or KILL (kill -9)

The audit hook sees each event before it happens; at the NTH match this process sends itself the
signal, so the step is cut short at exactly that point, every run.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys

event, match, nth, name, args = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5:]
seen = 0
busy = False


def hook(name_: str, details: tuple) -> None:
    global seen, busy
    if busy or name_ != event:
        return
    busy = True
    try:
        if match in repr(details):
            seen += 1
            if seen == nth:
                print(f"kill_at: SIG{name} at {event} {match!r} #{nth}", file=sys.stderr, flush=True)
                os.kill(os.getpid(), getattr(signal, f"SIG{name}"))
    finally:
        busy = False


sys.addaudithook(hook)
sys.argv = ["gt-dolt", *args]
runpy.run_module("gastown_tasks", run_name="__main__", alter_sys=True)
