"""A wedged server: take its goroutine dump, recover it (ops/wedge.py)."""

from __future__ import annotations

import sys

from .lifecycle import describe_start, notes
from .runner import Env


def dump(env: Env, no_start: bool = False) -> int:
    from ..ops import server
    from ..ops.recovery import dump as take_dump
    from ..ops.remote import refuse_if_remote

    town, settings = env.town_and_settings()
    refuse_if_remote(settings, "dump")
    print("sending SIGQUIT: Go writes the stacks and then ENDS the server (no drain, as a crash would)")
    saved = take_dump(town, settings)
    print(saved.sentence())
    if no_start:
        print("the server is stopped (--no-start); start it: gt-dolt start")
        return 0
    started = server.start(town, settings, echo=print)
    notes(started.notes)
    print(describe_start(started))
    return 0


def recover(env: Env) -> int:
    from ..ops.recovery import recover as run_recovery
    from ..ops.remote import refuse_if_remote

    town, settings = env.town_and_settings()
    refuse_if_remote(settings, "recover")
    done = run_recovery(town, settings)
    if done.before.kind == "refused credentials":
        print(f"error: {done.before.said}", file=sys.stderr)
        return 6
    if done.before.ok:
        print("the server answers and takes writes: nothing to recover")
        if done.before.said:
            print(f"note: {done.before.said}")
        return 0
    print(f"the server was wedged ({done.before.kind}): {done.before.said}")
    if done.dump is not None:
        print(done.dump.sentence())
    print(f"restarted it: pid {done.restarted_pid}")
    if not done.after.ok:
        print(
            f"error: still wedged after the restart ({done.after.kind}): {done.after.said}; see gt-dolt logs -n 200 "
            "and gt-dolt doctor",
            file=sys.stderr,
        )
        return 1
    print("it answers and takes writes again (write probe in __gastown_probe)")
    return 0
