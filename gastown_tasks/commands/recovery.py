"""A wedged server: take its goroutine dump, recover it (ops/server/wedge.py)."""

from __future__ import annotations

import sys

from ..exits import ExitCode
from .lifecycle import describe_start, notes
from .runner import Env
from .surface import LOCAL, Option, command


@command(
    "dump",
    options=(Option("no_start", "Leave the server stopped after the dump", flag=True),),
    reach=LOCAL,
)
def dump(env: Env, no_start: bool = False) -> int:
    """Save the server's goroutine stacks into daemon/dolt.log (SIGQUIT), which ENDS it; then start it again.

    Go's SIGQUIT handler writes every goroutine's stack and exits the process, so the server
    stops as a crash would (no drain).  The server is proved to be this town's first.  Examples:
      gt-dolt dump              # dump, then start again
      gt-dolt dump --no-start   # dump and leave it stopped
    """
    from ..ops.server import server
    from ..ops.server.recovery import dump as take_dump

    town, settings = env.town_and_settings()
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


@command(
    "recover",
    reach=LOCAL,
)
def recover(env: Env) -> int:
    """Probe the server; restart it if wedged or read-only, then prove it takes writes again.

    A read-only server is restarted gracefully; a silent one (stopped, no listener, connections
    at the cap, no answer) is dumped first (see dump).  Exit 0 answering and writable, 1 still
    wedged, 3 not running, 6 refused credentials.  Examples:
      gt-dolt recover
    """
    from ..ops.server.recovery import recover as run_recovery

    town, settings = env.town_and_settings()
    done = run_recovery(town, settings)
    if done.before.kind == "refused credentials":
        print(f"error: {done.before.said}", file=sys.stderr)
        return ExitCode.ACCESS_DENIED
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
        return ExitCode.FAILED
    print("it answers and takes writes again (write probe in __gastown_probe)")
    return 0
