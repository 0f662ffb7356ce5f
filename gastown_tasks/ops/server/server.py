"""Start, stop and restart the town's one `dolt sql-server`.

A server is this town's only when discovery proves it; everything else on the port is somebody
else's and is named, never signalled.  Each step holds the town lock, so concurrent starts end
with one server, and `restart` holds it across its stop and start.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

import psutil

from ..beads import beads, gtconfig
from ..errors import GastownError, NotOurs, PortInUse, StartFailed, StopFailed
from ..files.locking import holder_of, town_lock
from ..files.runfiles import remove_run_file, write_pid_file
from ..host import procs
from ..settings import DoltSettings
from ..sql import sqlclient
from ..town import Town
from .discovery import Observed, Running, found_notes, mark_stopped, observe
from .drain import DrainReport, drain
from .launch import Plan, StartResult, launch, preflight
from .verify import listener_problem

Echo = Callable[[str], None]


class StopResult(NamedTuple):
    was_running: bool
    notes: list[str]
    pid: int | None = None
    killed: bool = False  # needed SIGKILL after the timeout
    drain: DrainReport | None = None


def _quiet(_: str) -> None:
    pass


def _refuse_suspects(seen: Observed) -> None:
    """A second server would die on Dolt's lock of what the suspect holds: say whose it is instead."""
    if seen.suspects:
        said = "; ".join(f"{suspect.sentence()}; {suspect.remedy}" for suspect in seen.suspects)
        raise NotOurs(said)


def _already_running(town: Town, settings: DoltSettings, seen: Observed, running: Running, plan: Plan) -> StartResult:
    notes = seen.problems
    if seen.pid_file.pid != running.pid:
        write_pid_file(town, running.pid)
        notes.append(f"recorded pid {running.pid} in {town.pid_file}")
    notes.extend(found_notes(running, town, settings))
    wrong = listener_problem(running.proc, settings.with_overrides(port=running.port), plan.config)
    if wrong is not None:  # not started by this command: said, not stopped
        notes.append(f"pid {running.pid} was not started with gt-dolt's config: {wrong}; gt-dolt restart fixes that")
    served = sqlclient.served_databases(settings.with_overrides(port=running.port)) or []
    return StartResult(
        pid=running.pid,
        host=settings.host,
        port=running.port,
        data_dir=town.data_dir,
        databases=served,
        started=False,
        log_file=town.log_file,
        notes=notes,
    )


def _clear_stale_pid_file(town: Town, seen: Observed, notes: list[str]) -> None:
    if seen.pid_file.exists:
        remove_run_file(town, town.pid_file)
        why = seen.pid_file.problem or f"pid {seen.pid_file.pid} is not this town's server"
        notes.append(f"removed a stale pid file ({why})")


def _check_port(settings: DoltSettings, running: Running | None, town: Town | None = None) -> None:
    holders = [h for h in procs.port_holders(settings.host, settings.port) if running is None or h.pid != running.pid]
    if holders:
        from .imposters import hint

        said = PortInUse.held(settings.port, ", ".join(holder.describe() for holder in holders))
        extra = hint(town, settings.port, [h.pid for h in holders if h.pid]) if town is not None else ""
        raise PortInUse(f"{said}{extra}") if extra else said


def start(town: Town, settings: DoltSettings, timeout: float | None = None, echo: Echo = _quiet) -> StartResult:
    """Start this town's server and return once it answers SQL and lists every rig.

    Idempotent: a running server of this town is reported, not restarted.  A clustered server's
    role after its fence is `result.cluster` (exit_code 7: fenced, read-only; 8: broken).
    """
    timeout = (
        settings.start_timeout if timeout is None else settings.with_overrides(start_timeout=timeout).start_timeout
    )
    plan = preflight(town, settings)
    gtconfig.check_start(town, settings.port)
    with town_lock(town, wait=settings.lock_wait):
        seen = observe(town, settings)
        if seen.running is not None:
            result = _already_running(town, settings, seen, seen.running, plan)
        else:
            _refuse_suspects(seen)
            notes = seen.problems
            _clear_stale_pid_file(town, seen, notes)
            _check_port(settings, None, town)
            result = launch(town, settings, plan, timeout, echo)
            result.notes[:0] = notes
        result.notes.extend(beads.sync_notes(town, settings, result.port, result.databases))
    return _settled(town, settings, plan, result, echo)


def _settled(town: Town, settings: DoltSettings, plan: Plan, result: StartResult, echo: Echo) -> StartResult:
    """A clustered server's role once it answers: a fenced former primary is promoted only with its
    peers' proof (ops/cluster/fencing.py).  Outside the town lock, so `stop` need not wait for the fence."""
    if not plan.clustered:
        return result
    from ..cluster.fencing import settle

    return result._replace(cluster=settle(town, settings, result.port, echo))


def _stop_locked(
    town: Town, settings: DoltSettings, seen: Observed, timeout: float, force: bool, echo: Echo
) -> StopResult:
    notes = seen.problems
    running = seen.running
    if running is None:
        if seen.pid_file.exists:
            remove_run_file(town, town.pid_file)
            notes.append(f"removed a stale pid file {town.pid_file}")
        if seen.state.running:
            mark_stopped(town)
        return StopResult(was_running=False, notes=notes)
    drained = None
    if not force and running.listening and settings.drain_timeout:
        drained = drain(settings.with_overrides(port=running.port), settings.drain_timeout, echo)
        if drained.left_behind:
            notes.append(
                f"stopped with {len(drained.left_behind)} client(s) still busy after "
                f"{settings.drain_timeout:g}s: {', '.join(drained.left_behind)}"
            )
    try:
        killed = procs.terminate(running.proc, timeout)
    except psutil.AccessDenied:
        raise StopFailed(
            f"not allowed to signal dolt sql-server pid {running.pid}; stop it as the user that started it"
        ) from None
    except BaseException:
        _reconcile(town, running)  # Ctrl-C mid-stop: the files must say what is true
        raise
    if not procs.wait_exited(running.proc, 0):
        raise StopFailed(f"dolt sql-server pid {running.pid} is still running after SIGKILL")
    _reconcile(town, running)
    if killed:
        notes.append(f"it ignored SIGTERM for {timeout:g}s and was killed (SIGKILL)")
    return StopResult(was_running=True, pid=running.pid, killed=killed, drain=drained, notes=notes)


def _reconcile(town: Town, running: Running) -> None:
    """After a stop (finished or cut short): files say stopped only if the process has exited."""
    if not procs.wait_exited(running.proc, 0):
        return
    with contextlib.suppress(GastownError):
        from ..files.runfiles import read_pid_file

        if read_pid_file(town).pid == running.pid:
            remove_run_file(town, town.pid_file)
        mark_stopped(town)


def watcher_note(town: Town) -> str | None:
    """A `gt-dolt watch` of this town starts the server again: a stop says so."""
    who = holder_of(town.watch_lock, town.root)
    if who is None:
        return None
    return (
        f"gt-dolt watch ({who}) watches this town and will start the server again at its next check; "
        "to keep it stopped, end the watcher first (Ctrl-C where it runs)"
    )


def stop(
    town: Town, settings: DoltSettings, timeout: float | None = None, *, force: bool = False, echo: Echo = _quiet
) -> StopResult:
    """Stop this town's server (ours or started by hand): drain, SIGTERM, SIGKILL after timeout."""
    timeout = settings.stop_timeout if timeout is None else settings.with_overrides(stop_timeout=timeout).stop_timeout
    with town_lock(town, wait=settings.lock_wait):
        result = _stop_locked(town, settings, observe(town, settings), timeout, force, echo)
    note = watcher_note(town)
    if note:
        result.notes.append(note)
    return result


def restart(
    town: Town, settings: DoltSettings, timeout: float | None = None, *, force: bool = False, echo: Echo = _quiet
) -> tuple[StopResult, StartResult]:
    """Stop and start again, refusing before the stop whatever would make the start fail."""
    timeout = (
        settings.start_timeout if timeout is None else settings.with_overrides(start_timeout=timeout).start_timeout
    )
    plan: Plan = preflight(town, settings)
    gtconfig.check_start(town, settings.port)
    with town_lock(town, wait=settings.lock_wait):
        seen = observe(town, settings)
        _refuse_suspects(seen)
        _check_port(settings, seen.running, town)
        stopped = _stop_locked(town, settings, seen, settings.stop_timeout, force, echo)
        try:
            started = launch(town, settings, plan, timeout, echo)
        except GastownError as exc:
            if stopped.was_running:
                exc.add_note(
                    f"the server is down: it was stopped for the restart (pid {stopped.pid}) and the new "
                    "one did not start. Fix the cause above, then bring it back with: gt-dolt start"
                )
            raise
        started.notes[:0] = stopped.notes
        started.notes.extend(beads.sync_notes(town, settings, started.port, started.databases))
    return stopped, _settled(town, settings, plan, started, echo)


@contextmanager
def server_running(town: Town, settings: DoltSettings, timeout: float | None = None) -> Iterator[StartResult]:
    """The server runs for the block; stopped after only if this block started it.

    Invoke skips `post` tasks when a body fails; this does not.
    """
    result = start(town, settings, timeout)
    try:
        yield result
    finally:
        if result.started:
            stop(town, settings)


__all__ = ["StartFailed", "StartResult", "StopResult", "restart", "server_running", "start", "stop"]
