"""`dolt.doctor`: what is wrong with a town's Dolt setup, and the fixes that are always safe.

The checks only read (files, processes, the port, one SQL query), so doctor can run at any time,
even beside Gas Town's own `gt`.  `--fix` touches only our own run files in daemon/ (a stale
pid file, a state file that is unreadable or wrong), under the town lock; it never starts,
stops or signals a process and never touches a database.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from . import procs, server, sqlclient
from .binary import DOLT_RELEASE, find_dolt
from .dolt_build import dolt_version
from .errors import GastownError
from .locking import town_lock
from .rigs import rigs_on_disk
from .runfiles import now_iso, remove_file, write_state
from .settings import DoltSettings
from .town import Town

# What the pinned build (binary.DOLT_VERSION) reports as `dolt version`; see README "Dolt version".
EXPECTED_VERSION = DOLT_RELEASE
LEVELS = ("ok", "warn", "fail")
FIX = "gt-dolt doctor --fix"


@dataclass(frozen=True)
class Check:
    """One line of the report: a check's name, its level, what was seen, and the fixing command."""

    name: str
    level: str  # "ok", "warn" or "fail"
    detail: str
    fix: str | None = None

    def line(self) -> str:
        text = f"{self.level:<4} {self.name}: {self.detail}"
        return f"{text} -- fix: {self.fix}" if self.fix else text


@dataclass
class Report:
    checks: list[Check]
    fixed: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """Non-zero when any check fails; warnings alone do not fail doctor."""
        return 1 if any(check.level == "fail" for check in self.checks) else 0


@dataclass(frozen=True)
class _Seen(server.Observed):
    """One consistent reading of the files and processes, shared by every check."""

    servers: list[psutil.Process] = field(default_factory=list)


def _look(town: Town, settings: DoltSettings) -> _Seen:
    seen = server.observe(town, settings)
    running = seen.running
    servers = [p for p in procs.dolt_servers() if procs.serves_data_dir(p, town.data_dir)]
    if running is not None and running.pid not in {p.pid for p in servers}:
        servers.append(running.proc)
    return _Seen(seen.pid_file, seen.state, running, servers)


def check_binary(settings: DoltSettings) -> Check:
    try:
        dolt = find_dolt(settings.binary)
    except GastownError as exc:
        return Check("binary", "fail", str(exc), "gt-dolt install")
    reported = dolt_version(dolt)
    if reported is None:
        return Check("binary", "fail", f"{dolt} does not run (`dolt version` failed)", "gt-dolt install")
    version = reported.split()[-1] if reported.split() else reported
    if version != EXPECTED_VERSION:
        return Check(
            "binary",
            "warn",
            f"{dolt} is Dolt {version}; this package is built and tested against {EXPECTED_VERSION}",
            "gt-dolt install, then unset dolt.binary or take the other dolt off PATH",
        )
    return Check("binary", "ok", f"{dolt} ({reported})")


def _world_writable(path: Path) -> bool:
    try:
        return bool(path.lstat().st_mode & stat.S_IWOTH)
    except OSError:
        return False


def check_daemon(town: Town) -> Check:
    """daemon/ is a writable folder and nobody else can rewrite our pid/state files."""
    daemon = town.daemon_dir
    if not daemon.exists():
        return Check("daemon", "ok", f"{daemon} does not exist yet; start creates it")
    if not daemon.is_dir():
        return Check("daemon", "fail", f"{daemon} is not a folder", f"mv {daemon} {daemon}.bak")
    try:
        read_only = bool(os.statvfs(daemon).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only or not os.access(daemon, os.W_OK):
        why = "is on a read-only mount" if read_only else "is not writable"
        return Check("daemon", "fail", f"{daemon} {why}", f"make {daemon} writable")
    loose = [p for p in (daemon, *sorted(daemon.iterdir())) if _world_writable(p)]
    if loose:
        names = " ".join(str(p) for p in loose)
        return Check("daemon", "warn", f"world-writable: {names}", f"chmod o-w {names}")
    try:
        log_mode = stat.S_IMODE(town.log_file.stat().st_mode)
    except OSError:
        log_mode = None
    if log_mode is not None and log_mode & 0o077:
        return Check(
            "daemon", "warn", f"{town.log_file} is {log_mode:o}, not private", f"chmod 600 {town.log_file}"
        )
    return Check("daemon", "ok", f"{daemon} is a writable folder; nothing in it is world-writable")


def check_pid_file(town: Town, seen: _Seen) -> Check:
    pid_file, running = seen.pid_file, seen.running
    path = town.pid_file
    if running is not None:
        if pid_file.pid == running.pid:
            return Check("pid file", "ok", f"{path} names the running server, pid {running.pid}")
        what = pid_file.problem or (f"names pid {pid_file.pid}" if pid_file.pid else "is missing")
        return Check(
            "pid file", "warn", f"{what}, but this town's server is pid {running.pid}", f"{FIX} (records it)"
        )
    if pid_file.exists:
        what = pid_file.problem or f"names pid {pid_file.pid}, which is not this town's server"
        return Check("pid file", "warn", f"stale: {what}", f"{FIX} (removes it)")
    if pid_file.problem:
        return Check("pid file", "fail", pid_file.problem, f"mv {town.daemon_dir} {town.daemon_dir}.bak")
    return Check("pid file", "ok", "none, and no server is running")


def check_state_file(town: Town, seen: _Seen) -> Check:
    state, running = seen.state, seen.running
    if state.problem:
        return Check("state file", "warn", state.problem, f"{FIX} (rewrites it)")
    data = state.data
    if running is not None:
        if data.get("running") is True and data.get("pid") == running.pid:
            return Check("state file", "ok", f"says running, pid {running.pid}")
        said = f"running, pid {data.get('pid')}" if data.get("running") else "not running"
        return Check(
            "state file",
            "warn",
            f"says {said}, but this town's server is pid {running.pid}",
            f"{FIX} (rewrites it)",
        )
    if data.get("running"):
        return Check(
            "state file",
            "warn",
            f"says running (pid {data.get('pid')}), but no server of this town runs",
            f"{FIX} (marks it stopped)",
        )
    return Check("state file", "ok", "says not running" if data else f"none yet ({town.state_file})")


def check_port(settings: DoltSettings, seen: _Seen) -> Check:
    port, running = settings.port, seen.running
    if running is not None and running.port == port:
        return Check("port", "ok", f"{port} is held by this town's server (pid {running.pid})")
    holders = [h for h in procs.port_holders(settings.host, port) if running is None or h.pid != running.pid]
    if holders:
        return Check(
            "port",
            "fail",
            f"{port} is held by {', '.join(h.describe() for h in holders)}, not by this town's server",
            "stop that process, or choose another port: dolt.port, GT_DOLT_PORT or --port",
        )
    if running is not None:
        return Check(
            "port",
            "warn",
            f"{port} is free, but this town's server listens on {running.port}",
            "gt-dolt restart (moves it to the configured port)",
        )
    return Check("port", "ok", f"{port} is free")


def _port_text(proc: psutil.Process) -> str:
    ports = procs.listening_ports(proc)
    return f"port {ports[0]}" if ports else "no port seen"


def check_orphans(town: Town, seen: _Seen) -> Check:
    """Dolt servers of this town that the pid file does not know."""
    known = seen.pid_file.pid
    orphans = [p for p in seen.servers if p.pid != known]
    if not orphans:
        return Check("orphans", "ok", f"no dolt sql-server serves {town.data_dir} unknown to the pid file")
    listed = ", ".join(f"pid {p.pid} ({_port_text(p)})" for p in orphans)
    if len(seen.servers) > 1:
        every = ", ".join(f"pid {p.pid} ({_port_text(p)})" for p in seen.servers)
        pids = " ".join(str(p.pid) for p in orphans)
        return Check(
            "orphans",
            "fail",
            f"{len(seen.servers)} dolt sql-servers serve {town.data_dir}: {every}; only one can own it",
            f"gt-dolt stop, then stop the others by hand (pids {pids})",
        )
    return Check(
        "orphans",
        "warn",
        f"{listed} serves {town.data_dir} but {town.pid_file} does not name it",
        f"{FIX} (records it) or gt-dolt stop",
    )


def check_rigs(town: Town, settings: DoltSettings, seen: _Seen) -> Check:
    on_disk = [rig.name for rig in rigs_on_disk(town)]
    if not on_disk:
        return Check("rigs", "warn", f"no rig databases in {town.data_dir}", "gt-dolt init-rig <name>")
    if seen.running is None:
        return Check("rigs", "ok", f"on disk: {', '.join(on_disk)} (served from the next start)")
    target = settings.with_overrides(port=seen.running.port)
    served = sqlclient.served_databases(target)
    if served is None:
        return Check(
            "rigs",
            "warn",
            f"the server (pid {seen.running.pid}) does not answer SQL on {target.host}:{target.port}",
            "gt-dolt restart",
        )
    missing = sqlclient.missing(on_disk, served)
    if missing:
        return Check(
            "rigs",
            "warn",
            f"on disk but not served: {', '.join(missing)}",
            "gt-dolt restart (the server loads rigs when it starts)",
        )
    return Check("rigs", "ok", f"all served: {', '.join(on_disk)}")


def run_checks(town: Town, settings: DoltSettings) -> list[Check]:
    """Every check, in the order a person would fix things."""
    seen = _look(town, settings)
    return [
        check_binary(settings),
        check_daemon(town),
        check_port(settings, seen),
        check_pid_file(town, seen),
        check_state_file(town, seen),
        check_orphans(town, seen),
        check_rigs(town, settings, seen),
    ]


def apply_safe_fixes(town: Town, settings: DoltSettings) -> list[str]:
    """Only our own run files, under the town lock: never a process, never a database.

    Running server of this town: record it in the pid and state files.  None: remove a stale
    pid file and mark the state stopped; an unreadable state file is kept beside it as
    dolt-state.json.corrupt and replaced.
    """
    done: list[str] = []

    def attempt(what: str, action: Callable[[], None], target: Path) -> None:
        try:
            action()
            done.append(what)
        except GastownError as exc:
            done.append(f"could not fix {target}: {exc}")

    with town_lock(town, wait=settings.start_timeout + settings.stop_timeout + server.LOCK_SLACK):
        seen = _look(town, settings)
        pid_file, state, running = seen.pid_file, seen.state, seen.running
        if running is not None:
            stale_pid = pid_file.pid != running.pid
            stale_state = (
                state.problem is not None
                or state.data.get("running") is not True
                or state.data.get("pid") != running.pid
            )
            if stale_pid or stale_state:
                if state.problem and town.state_file.is_file():
                    _keep_corrupt(town)
                served = sqlclient.served_databases(settings.with_overrides(port=running.port)) or []
                attempt(
                    f"recorded the running server (pid {running.pid}) in {town.pid_file} and "
                    f"{town.state_file}",
                    lambda: server.record_running(town, settings, running, served),
                    town.daemon_dir,
                )
            return done
        if pid_file.exists:
            why = pid_file.problem or f"it named pid {pid_file.pid}, which is not this town's server"
            attempt(
                f"removed the stale {town.pid_file} ({why})",
                lambda: remove_file(town.pid_file),
                town.pid_file,
            )
        if state.problem:
            kept = _keep_corrupt(town)
            attempt(
                f"replaced the unreadable {town.state_file}" + (f" (kept as {kept})" if kept else ""),
                lambda: write_state(town.state_file, {"running": False, "repaired_at": now_iso()}),
                town.state_file,
            )
        elif state.data.get("running"):
            attempt(f"marked {town.state_file} stopped", lambda: server.mark_stopped(town), town.state_file)
    return done


def _keep_corrupt(town: Town) -> Path | None:
    """A copy of an unreadable state file, for whoever wants to know how it got that way."""
    kept = town.state_file.with_name(town.state_file.name + ".corrupt")
    try:
        kept.write_bytes(town.state_file.read_bytes())
        return kept
    except OSError:
        return None


def doctor(town: Town, settings: DoltSettings, fix: bool = False) -> Report:
    """Run the checks; with `fix`, apply the safe fixes first and report the checks after them."""
    fixed = apply_safe_fixes(town, settings) if fix else []
    return Report(run_checks(town, settings), fixed)
