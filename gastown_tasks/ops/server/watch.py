"""Keeping the server running: check every interval, restart with backoff, give up loudly.

One watcher per town (daemon/dolt-watch.lock); every event goes to daemon/dolt-watch.log.  A dead
server is started again at once; one that is alive but wedged (ops/server/wedge.py: stopped, no listener,
connections at the cap, no answer within the deadline, read-only) at two checks in a row is
restarted: a read-only one gracefully (it still answers), a silent one after a goroutine dump
(SIGQUIT: Go writes the stacks into dolt.log and exits), then started.  Further restarts wait 5 s,
doubling to 5 min; after 5 restarts in 10 minutes the watcher gives up (exit 1) rather than restart
a server that keeps dying.  A healthy check after the backoff's worth of time resets it.  Ctrl-C
ends the watch and leaves the server as it is.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from ..errors import GastownError, LockTimeout
from ..files import safefs
from ..files.locking import file_lock, holder_of
from ..files.runfiles import iso_time
from ..settings import DoltSettings
from ..town import Town
from .discovery import observe
from .launch import StartResult
from .server import restart, start
from .wedge import Wedge

Verdict = Literal["ok", "dead", "unanswering"]
Echo = Callable[[str], None]


def say(line: str) -> None:
    """A watcher runs for days, often into a pipe or a file: each event is written when it happens."""
    print(line, flush=True)


class Policy(NamedTuple):
    backoff: float = 5.0
    max_backoff: float = 300.0
    max_restarts: int = 5
    window: float = 600.0
    unanswering_checks: int = 2  # consecutive checks without an answer before a restart


@dataclass
class Watcher:
    town: Town
    settings: DoltSettings
    policy: Policy = field(default_factory=Policy)
    echo: Echo = say
    stop_event: threading.Event = field(default_factory=threading.Event)
    restarts: list[float] = field(default_factory=list)
    silent_checks: int = 0
    backoff: float = 0.0
    healthy_since: float | None = None
    wedge: Wedge = Wedge("ok")
    wedged_pid: int | None = None

    def log(self, message: str) -> None:
        line = f"{iso_time()} {message}"
        self.echo(line)
        try:
            with safefs.open_append(self.town.watch_log, root=self.town.root) as fd:
                safefs.write_all(fd, (line + "\n").encode())
        except GastownError as exc:
            self.echo(f"(could not write {self.town.watch_log}: {exc})")

    def check(self) -> Verdict:
        seen = observe(self.town, self.settings)
        if seen.running is None:
            return "dead"
        from .wedge import diagnose

        self.wedge = diagnose(self.town, self.settings, seen.running)
        self.wedged_pid = seen.running.pid
        answers = self.wedge.ok or self.wedge.kind == "refused credentials"
        self.silent_checks = 0 if answers else self.silent_checks + 1
        if not answers:
            self.log(f"check {self.silent_checks} in a row: wedged ({self.wedge.kind}): {self.wedge.said}")
        if answers and self.settings.cluster:
            self.finish_fence(seen.running.port)
        return "ok" if answers or self.silent_checks < self.policy.unanswering_checks else "unanswering"

    def finish_fence(self, port: int) -> None:
        """A fenced former primary whose peers now answer takes the primary role (ops/cluster/fencing.py):
        with a watcher, a pair whose hosts came back far apart needs no second `start`."""
        from ..cluster.fencing import settle_pending

        try:
            standing = settle_pending(self.town, self.settings, port, self.log)
        except GastownError as exc:
            self.log(f"fence not settled: {str(exc).splitlines()[0]}")
            return
        if standing is not None and not standing.fenced:
            self.log(f"cluster: {standing.said}")

    def may_restart(self, now: float) -> bool:
        self.restarts = [at for at in self.restarts if now - at < self.policy.window]
        return len(self.restarts) < self.policy.max_restarts

    def revive(self, verdict: Verdict) -> bool:
        """One restart attempt; True when the server answers afterwards."""
        if self.restarts and self.backoff:
            self.log(f"waiting {self.backoff:g}s before the next restart (backoff)")
            if self.stop_event.wait(self.backoff):
                return False
        self.restarts.append(time.monotonic())
        self.backoff = min(max(self.backoff * 2, self.policy.backoff), self.policy.max_backoff)
        what = "the server is not running" if verdict == "dead" else f"the server was wedged ({self.wedge.kind})"
        try:
            if verdict == "dead":
                result = start(self.town, self.settings)
            elif self.wedge.kind == "read-only":  # it still answers: a graceful restart reopens its rigs
                _, result = restart(self.town, self.settings)
            else:
                result = self.dump_and_start()
        except GastownError as exc:
            self.log(f"{what}; restart {len(self.restarts)} failed: {str(exc).splitlines()[0]}")
            return False
        self.silent_checks = 0
        self.log(f"{what}; restarted it: pid {result.pid} on port {result.port}")
        return True

    def dump_and_start(self) -> StartResult:
        """A silent server gets SIGQUIT (its stacks go to dolt.log, and Go ends it), then a start."""
        from .recovery import dump

        saved = dump(self.town, self.settings, self.wedged_pid)
        self.log(saved.sentence())
        return start(self.town, self.settings)

    def once(self) -> int:
        """One check (and one restart when needed); the status code: 0 answering, 3 not."""
        verdict = self.check()
        if verdict == "ok":
            return 0
        return 0 if self.revive(verdict) else 3

    def run(self, interval: float) -> int:
        self.log(f"watching {self.town.data_dir} every {interval:g}s (pid {os.getpid()})")
        while not self.stop_event.is_set():
            verdict = self.check()
            now = time.monotonic()
            if verdict == "ok":
                self.healthy_since = self.healthy_since or now
                if self.backoff and now - self.healthy_since >= self.backoff:
                    self.backoff = 0.0  # healthy for as long as it last waited: start over
            else:
                self.healthy_since = None
                if not self.may_restart(now):
                    self.log(
                        f"giving up: {self.policy.max_restarts} restarts in {self.policy.window / 60:g} minutes "
                        "and the server still does not stay up; see gt-dolt logs and gt-dolt doctor"
                    )
                    return 1
                self.revive(verdict)
            self.stop_event.wait(interval)
        return 0


def supervise(
    town: Town,
    settings: DoltSettings,
    interval: float,
    once: bool = False,
    echo: Echo = say,
    policy: Policy | None = None,
) -> int:
    watcher = Watcher(town, settings, policy or Policy(), echo)
    try:
        with file_lock(town.watch_lock, town.root, 0, "another gt-dolt watch"):
            if once:
                return watcher.once()
            try:
                return watcher.run(interval)
            except KeyboardInterrupt:
                watcher.log("watch ended (Ctrl-C); the server was left as it is")
                return 0
    except LockTimeout:
        who = holder_of(town.watch_lock, town.root)
        raise LockTimeout(
            f"another gt-dolt watch is already watching this town ({f'{who}; ' if who else ''}it holds "
            f"{town.watch_lock}); one is enough"
        ) from None
