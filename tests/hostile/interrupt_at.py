"""Run gt-dolt and press Ctrl-C (a real SIGINT to itself) the moment it imports MODULE.

Usage: python interrupt_at.py MODULE <gt-dolt args>

An audit hook sees each import; the first import of MODULE sends SIGINT, which Python turns into
KeyboardInterrupt at the next instruction: Ctrl-C "during imports", at a chosen import, every run.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys

target, args = sys.argv[1], sys.argv[2:]
fired = False


def hook(event: str, details: tuple) -> None:
    global fired
    if event == "import" and not fired and details and details[0] == target:
        fired = True
        os.kill(os.getpid(), signal.SIGINT)


sys.addaudithook(hook)
sys.argv = ["gt-dolt", *args]
runpy.run_module("gastown_tasks", run_name="__main__", alter_sys=True)
