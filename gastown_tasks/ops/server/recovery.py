"""Acting on a wedged server (ops/server/wedge.py): its goroutine dump, and recovery.

The dump: SIGQUIT makes Go write every goroutine's stack to stderr (the town's dolt.log), and Go's
default handler then ENDS the process (the pinned Dolt installs no handler of its own: verified),
as a crash would: no drain, no clean close.  So a dump is followed by a start, unless the caller
says otherwise.  Every signal goes through the psutil.Process that discovery proved to be this
town's server, re-proved under the town lock just before it is sent.
"""

from __future__ import annotations

import signal
from typing import NamedTuple

import psutil

from ..errors import ExitCode, GastownError, NotOurs
from ..files.locking import town_lock
from ..files.logfile import file_size, read_since
from ..host import procs
from ..polling import poll_until
from ..settings import DoltSettings
from ..town import Town
from .discovery import Running, observe
from .wedge import SILENT, Wedge, diagnose

DUMP_WAIT = 15.0  # seconds for Go to write the stacks and exit (about 2 s for a small town)
DUMP_READ = 8 * 1024 * 1024  # bytes of the log read back to count the goroutines


class Dump(NamedTuple):
    pid: int
    log_file: str
    goroutines: int  # counted in what the log gained; 0 when the stacks went elsewhere
    written: bool  # "SIGQUIT: quit" is in the log
    exited: bool  # it ended on SIGQUIT (else it was stopped with SIGTERM/SIGKILL after DUMP_WAIT)

    def sentence(self) -> str:
        if self.written:
            where = f"{self.goroutines} goroutine stacks written to {self.log_file} (gt-dolt logs -n 400)"
        else:
            where = f"no stacks reached {self.log_file} (a server started by hand writes them to its own stderr)"
        how = "and exited, as Go does on SIGQUIT" if self.exited else "; it did not exit, so it was stopped"
        return f"dump of pid {self.pid}: {where} {how}"


def _proven(town: Town, settings: DoltSettings, pid: int | None) -> Running:
    """The town's server, proved now (and the same process as `pid`, when given)."""
    seen = observe(town, settings)
    running = seen.running
    if running is None:
        raise GastownError("no server of this town is running: nothing to dump", exit_code=ExitCode.NOT_RUNNING)
    if pid is not None and running.pid != pid:
        raise NotOurs(f"pid {pid} is no longer this town's server (pid {running.pid} is); nothing was signalled")
    return running


def dump(town: Town, settings: DoltSettings, pid: int | None = None, wait: float = DUMP_WAIT) -> Dump:
    """SIGQUIT the town's server (proved first, under the town lock) and wait for it to end.

    A stopped process gets SIGCONT after the SIGQUIT, so that it can write the stacks.  One that has
    not ended after `wait` is stopped as `stop` would (SIGTERM, then SIGKILL).
    """
    from .server import _reconcile

    with town_lock(town, wait=settings.lock_wait):
        running = _proven(town, settings, pid)
        proc = running.proc
        offset = file_size(town.log_file, root=town.root)
        try:
            proc.send_signal(signal.SIGQUIT)  # psutil refuses a pid reused since discovery proved it
            proc.send_signal(signal.SIGCONT)
        except psutil.NoSuchProcess:
            pass
        except psutil.AccessDenied:
            raise NotOurs(f"not allowed to signal pid {running.pid}; dump it as the user that runs it") from None
        exited = procs.wait_exited(proc, wait)
        if not exited:
            procs.terminate(proc, settings.stop_timeout)
        _reconcile(town, running)
    gained = read_since(town.log_file, offset, root=town.root, limit=DUMP_READ)
    return Dump(
        pid=running.pid,
        log_file=str(town.log_file),
        goroutines=gained.count("\ngoroutine ") + gained.startswith("goroutine "),
        written="SIGQUIT: quit" in gained,
        exited=exited,
    )


def verify_writable(town: Town, settings: DoltSettings, within: float = 10.0) -> Wedge:
    """After a restart: the server answers and takes writes (retried: a server may need a moment)."""
    last: list[Wedge] = [Wedge("unanswering", "no server of this town runs after the restart")]

    def fine() -> bool:
        running = observe(town, settings).running
        if running is None:
            return False
        last[0] = diagnose(town, settings, running, write=True)
        return last[0].ok

    poll_until(fine, within, max_delay=1.0)
    return last[0]


class Recovery(NamedTuple):
    before: Wedge
    after: Wedge
    dump: Dump | None = None
    restarted_pid: int | None = None


def recover(town: Town, settings: DoltSettings) -> Recovery:
    """Probe; restart a read-only server (gracefully: it still answers), dump and restart a silent
    one; then prove it answers and takes writes.  Raises when no server runs."""
    from .server import restart, start

    running = observe(town, settings).running
    if running is None:
        raise GastownError(
            "no server of this town is running: nothing to recover; start it: gt-dolt start",
            exit_code=ExitCode.NOT_RUNNING,
        )
    before = diagnose(town, settings, running, write=True)
    if before.ok or before.kind == "refused credentials":
        return Recovery(before, before)
    saved = None
    if before.kind in SILENT:
        saved = dump(town, settings, running.pid)
        result = start(town, settings)
    else:
        _, result = restart(town, settings)
    return Recovery(before, verify_writable(town, settings), saved, result.pid)
