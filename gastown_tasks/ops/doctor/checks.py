"""The checks `doctor` runs on a town's local server and its files; each only reads.

One `Check` per line of the report: a name, a level, what was seen, and the command that fixes it.
"""

from __future__ import annotations

import os
import stat
from typing import Literal, NamedTuple

import psutil

from ..build.binary import DOLT_RELEASE, find_dolt, identify
from ..errors import AccessDenied, GastownError, Remedy
from ..files import privilege, safefs
from ..files.datadir import scan_data_dir, some_of, untextual_note
from ..host import procs
from ..server.discovery import Observed
from ..server.launch import RUN_FILES
from ..settings import DoltSettings
from ..sql import sqlclient
from ..town import Town

Level = Literal["ok", "warn", "fail"]
FIX = "gt-dolt doctor --fix"


class Fix(NamedTuple):
    what: str
    done: bool  # False: it was not applied, `what` says why


class Check(NamedTuple):
    """One line of the report: a check's name, its level, what was seen, and the fixing command."""

    name: str
    level: Level
    detail: str
    fix: str | None = None

    def line(self) -> str:
        text = f"{self.level:<4} {self.name}: {self.detail}"
        return f"{text} -- fix: {self.fix}" if self.fix else text


def check_binary(settings: DoltSettings) -> Check:
    try:
        dolt = identify(find_dolt(settings.binary))
    except GastownError as exc:
        return Check("binary", "fail", str(exc), "gt-dolt install")
    if dolt.version is None:
        return Check("binary", "fail", f"{dolt.path} does not run (`dolt version` failed)", "gt-dolt install")
    if dolt.release != DOLT_RELEASE:
        return Check(
            "binary",
            "warn",
            f"{dolt.path} is Dolt {dolt.release}; this package is built and tested against {DOLT_RELEASE}",
            "gt-dolt install, then unset dolt.binary or take the other dolt off PATH",
        )
    return Check("binary", "ok", f"{dolt.path} ({dolt.version})")


def planted(town: Town) -> list[str]:
    """Run-file positions holding something we never use: a link, FIFO, device, folder, another's file."""
    from ..files.backuprecords import records_file

    paths = [getattr(town, name) for name in RUN_FILES]
    paths += [town.state_file.with_name(town.state_file.name + ".corrupt"), town.watch_log, town.watch_lock]
    paths.append(records_file(town))
    found = []
    for path in paths:
        what = safefs.describe(path)
        if what is not None:
            found.append(f"{path} is {what}")
    return found


def check_daemon(town: Town) -> Check:
    """daemon/ is a writable real folder, its run files are plain files of ours, none world-writable."""
    daemon = town.daemon_dir
    if not os.path.lexists(daemon):
        return Check("daemon", "ok", f"{daemon} does not exist yet; start creates it")
    try:
        safefs.require_dir(daemon, root=town.root)
    except GastownError as exc:
        return Check("daemon", "fail", str(exc), f"mv {daemon} {daemon}.bak")
    try:
        read_only = bool(os.statvfs(daemon).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only or not os.access(daemon, os.W_OK):
        why = "is on a read-only mount" if read_only else "is not writable"
        return Check("daemon", "fail", f"{daemon} {why}", f"make {daemon} writable")
    bad = planted(town)
    if bad:
        paths = " ".join(entry.split(" is ")[0] for entry in bad)
        return Check("run files", "fail", "; ".join(bad) + " (never written through)", f"rm {paths}")
    loose = [p for p in (daemon, *sorted(daemon.iterdir())) if _world_writable(p)]
    if loose:
        names = " ".join(str(p) for p in loose)
        return Check("daemon", "warn", f"world-writable: {names}", f"chmod o-w {names}")
    try:
        log_mode = stat.S_IMODE(os.lstat(town.log_file).st_mode)
    except OSError:
        log_mode = None
    if log_mode is not None and log_mode & 0o077:
        return Check("daemon", "warn", f"{town.log_file} is {log_mode:o}, not private", f"chmod 600 {town.log_file}")
    return Check("daemon", "ok", f"{daemon} is a writable folder; nothing in it is world-writable")


def _world_writable(path: os.PathLike[str]) -> bool:
    """A link's own mode means nothing (and chmod would follow it): links are `planted` instead."""
    try:
        st = os.lstat(path)
        return not stat.S_ISLNK(st.st_mode) and bool(st.st_mode & stat.S_IWOTH)
    except OSError:
        return False


def check_pid_file(town: Town, seen: Observed) -> Check:
    pid_file, running = seen.pid_file, seen.running
    path = town.pid_file
    if running is not None:
        if pid_file.pid == running.pid:
            return Check("pid file", "ok", f"{path} names the running server, pid {running.pid}")
        what = pid_file.problem or (f"names pid {pid_file.pid}" if pid_file.pid else "is missing")
        return Check("pid file", "warn", f"{what}, but this town's server is pid {running.pid}", f"{FIX} (records it)")
    if pid_file.exists:
        what = pid_file.problem or f"names pid {pid_file.pid}, which is not this town's server"
        return Check("pid file", "warn", f"stale: {what}", f"{FIX} (removes it)")
    return Check("pid file", "ok", "none, and no server is running")


def check_state_file(town: Town, seen: Observed) -> Check:
    state, running = seen.state, seen.running
    if state.problem:
        return Check("state file", "warn", state.problem, f"{FIX} (rewrites it)")
    if running is not None:
        if state.claims(running.pid):
            return Check("state file", "ok", f"says running, pid {running.pid}")
        said = f"running, pid {state.pid}" if state.running else "not running"
        return Check(
            "state file", "warn", f"says {said}, but this town's server is pid {running.pid}", f"{FIX} (rewrites it)"
        )
    if state.running:
        return Check(
            "state file",
            "warn",
            f"says running (pid {state.pid}), but no server of this town runs",
            f"{FIX} (marks it stopped)",
        )
    return Check("state file", "ok", "says not running" if state.to_json() else f"none yet ({town.state_file})")


def check_port(settings: DoltSettings, seen: Observed) -> Check:
    port, running = settings.port, seen.running
    if running is not None and running.port == port:
        return Check("port", "ok", f"{port} is held by this town's server (pid {running.pid})")
    holders = [h for h in procs.port_holders(settings.host, port) if running is None or h.pid != running.pid]
    if holders:
        return Check(
            "port",
            "fail",
            f"{port} is held by {', '.join(h.describe() for h in holders)}, not by this town's server",
            f"stop that process, or {Remedy.OTHER_PORT}",
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


def check_orphans(town: Town, seen: Observed) -> Check:
    """Dolt servers of this town that the pid file does not know, and look-alikes that are not ours."""
    if seen.suspects:
        return Check(
            "orphans",
            "fail",
            "; ".join(s.sentence() for s in seen.suspects),
            "; ".join(dict.fromkeys(s.remedy for s in seen.suspects)),
        )
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


def _dolt_files_exposed(dolt_dir: os.PathLike[str]) -> bool:
    """Dolt writes config.json and repo_state.json 0666 whatever the umask; that is harmless only
    when others cannot enter .dolt (Dolts we start make it 0700)."""
    try:
        if not os.lstat(dolt_dir).st_mode & stat.S_IXOTH:
            return False
        return any(
            os.lstat(os.path.join(dolt_dir, name)).st_mode & stat.S_IWOTH
            for name in ("config.json", "repo_state.json")
            if os.path.lexists(os.path.join(dolt_dir, name))
        )
    except OSError:
        return False


def check_rig_files(town: Town) -> Check:
    try:
        rigs = scan_data_dir(town).rigs
    except GastownError:
        return Check("rig files", "ok", "see rigs")
    exposed = [rig.path / ".dolt" for rig in rigs if _dolt_files_exposed(rig.path / ".dolt")]
    if exposed:
        listed = " ".join(str(p) for p in exposed)
        return Check(
            "rig files",
            "warn",
            f"Dolt made files in {listed} writable by every user, and others can "
            "reach them (a Dolt not started by gt-dolt made these folders open)",
            f"chmod o-rwx {listed}",
        )
    return Check("rig files", "ok", "no rig's .dolt lets other users reach files Dolt made writable")


def check_rigs(town: Town, settings: DoltSettings, seen: Observed) -> Check:
    try:
        found = scan_data_dir(town)
    except GastownError as exc:
        return Check("rigs", "fail", str(exc), f"mv {town.data_dir} {town.data_dir}.bak")
    refusals = found.refusals()
    if refusals:
        return Check("rigs", "fail", "; ".join(refusals), "see each message (start refuses until then)")
    on_disk = found.names
    odd = f"; {untextual_note(found.untextual)}" if found.untextual else ""
    if odd and seen.running is None:
        return Check("rigs", "warn", f"on disk: {some_of(on_disk) or 'no rig'}{odd}", "rename those folders")
    if not on_disk:
        return Check("rigs", "warn", f"no rig databases in {town.data_dir}", "gt-dolt init-rig <name>")
    if seen.running is None:
        return Check("rigs", "ok", f"on disk: {some_of(on_disk)} (served from the next start)")
    target = settings.with_overrides(port=seen.running.port)
    try:
        served = sqlclient.served_databases(target)
    except AccessDenied as exc:
        return Check("rigs", "fail", str(exc), "set the right password")
    if served is None:
        return Check(
            "rigs",
            "warn",
            f"the server (pid {seen.running.pid}) does not answer SQL on {target.address}",
            "gt-dolt restart",
        )
    lacking = sqlclient.missing(on_disk, served)
    if lacking:
        return Check(
            "rigs",
            "warn",
            f"on disk but not served: {', '.join(lacking)}",
            "gt-dolt restart (the server loads rigs when it starts)",
        )
    if odd:
        return Check("rigs", "warn", f"all served: {some_of(on_disk)}{odd}", "rename those folders")
    return Check("rigs", "ok", f"all served: {some_of(on_disk)}")


def check_server_folders(town: Town) -> Check:
    """The folders the server writes by path besides its data dir (backups, a cluster's Dolt root)
    are ours and closed to other users, and nothing in the backups folder is a link."""
    problems: list[tuple[str, str]] = []
    for folder in (town.backup_dir, town.dolt_root):
        if not os.path.lexists(folder):
            continue
        try:
            st = os.lstat(folder)
        except OSError as exc:
            problems.append((f"cannot read {folder} ({exc.strerror})", f"ls -ld {folder}"))
            continue
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
            problems.append((f"{folder} is not a real folder", f"mv {folder} {folder}.bak"))
        elif st.st_uid != os.geteuid():
            problems.append((f"{folder} belongs to uid {st.st_uid}", f"mv {folder} {folder}.bak"))
        elif st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            problems.append((f"others can write in {folder}", f"chmod go-w {folder}"))
        elif folder == town.backup_dir:
            for entry in sorted(os.scandir(folder), key=lambda e: e.name):
                if entry.is_symlink():
                    problems.append((f"{entry.path} is a symlink", f"rm {entry.path}"))
                elif entry.stat(follow_symlinks=False).st_uid != os.geteuid():
                    problems.append((f"{entry.path} is another user's", f"mv {entry.path} {entry.path}.bak"))
    if problems:
        return Check(
            "server folders",
            "fail",
            "; ".join(what for what, _ in problems) + " (the server writes there by path)",
            "; ".join(fix for _, fix in problems),
        )
    return Check("server folders", "ok", "backups and cluster root, where present, are yours alone")


def check_privilege(town: Town) -> Check:
    """Least privilege: nobody with less power than us may change what the server opens (start refuses)."""
    problems = privilege.every_problem(town)
    if problems:
        return Check("privilege", "fail", "; ".join(problems), "see each message (start refuses until then)")
    return Check("privilege", "ok", "nobody with less power than you can change the server's folders or databases")


def local_checks(town: Town, settings: DoltSettings, seen: Observed) -> list[Check]:
    """Every local check, in the order a person would fix things."""
    return [
        check_binary(settings),
        check_daemon(town),
        check_server_folders(town),
        check_privilege(town),
        check_port(settings, seen),
        check_pid_file(town, seen),
        check_state_file(town, seen),
        check_orphans(town, seen),
        check_rigs(town, settings, seen),
        check_rig_files(town),
    ]
