"""Launching the town's server: what must hold before anything is stopped or started, and the start.

`preflight` checks everything a start needs without changing anything (binary, rigs, network
rule, config, folders), so `restart` can refuse before it stops a server.  `launch` writes the
managed config, spawns `dolt sql-server --config …`, records it, and waits until it answers and
serves every rig; any failure or Ctrl-C undoes the start (no orphan, no pid file, the state says
why).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import psutil

from ..build.binary import DOLT_UMASK, DoltBinary, dolt_command_hint, dolt_env, find_dolt, identify, run_dolt
from ..cluster import fencing
from ..errors import ConfigError, GastownError, NoRigs, StartFailed, UnsafeFile
from ..files import logrotate, privilege, safefs
from ..files.datadir import scan_data_dir
from ..files.logfile import file_size, read_since
from ..files.runfiles import ensure_daemon_dir, iso_time, read_pid_file, remove_run_file, write_pid_file, write_state
from ..host import procs
from ..settings import DoltSettings
from ..town import Town
from . import serverconfig
from .discovery import Record, mark_stopped, state_of
from .health import disk_bytes
from .readiness import damaged_rig_hint, log_tail, skipped_rigs, wait_ready
from .verify import verify_started


class StartResult(NamedTuple):
    pid: int
    host: str
    port: int
    data_dir: Path
    databases: list[str]
    started: bool  # False when this town's server was already running
    log_file: Path
    notes: list[str]
    cluster: fencing.Standing | None = None  # a clustered server's role after start (ops/cluster/fencing.py)


class Plan(NamedTuple):
    """What a start will run, checked before anything changes."""

    dolt: DoltBinary
    rigs: list[str]
    config: dict[str, Any]
    notes: list[str]
    clustered: bool = False


EXTRA_LISTENERS = ("mcp_server", "remotesapi")  # Dolt binds these on every interface


def check_network(settings: DoltSettings) -> None:
    """Listening beyond loopback with an empty password needs an explicit yes."""
    if settings.password or settings.allow_passwordless_bind:
        return
    extra = [name for name in EXTRA_LISTENERS if settings.server.get(name)]
    if extra:
        raise ConfigError(
            f"dolt.server.{extra[0]} opens a port on every interface, and the password is empty: anyone who "
            "reaches it could use the databases. Set a password (dolt.password or GT_DOLT_PASSWORD), remove "
            "it, or, on a network you trust, set dolt.allow_passwordless_bind: true"
        )
    if settings.is_loopback:
        return
    raise ConfigError(
        f"dolt.host is {settings.host}, which listens beyond this machine's loopback, and the password "
        "is empty: anyone who reaches the port could use the server. Set a password (dolt.password or "
        "GT_DOLT_PASSWORD, and give the server's root that password), use 127.0.0.1, or, on a network "
        "you trust, set dolt.allow_passwordless_bind: true"
    )


# Paths in dolt.server where the server writes (or lets SQL read and write) files.
SERVER_PATHS: dict[tuple[str, ...], str] = {
    ("system_variables", "secure_file_priv"): "SQL reads and writes files there",
    ("privilege_file",): "it keeps users and grants there",
    ("branch_control_file",): "it keeps branch permissions there",
    ("cfg_dir",): "it keeps users and grants there",
}


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_server_paths(config: Mapping[str, Any], town: Town, settings: DoltSettings) -> None:
    """A path where the server writes must be in the town's .dolt-data or daemon/, whose writers
    start checks (least privilege), unless dolt.allow_outside_paths says otherwise."""
    if settings.allow_outside_paths:
        return
    folders = [os.path.realpath(town.data_dir), os.path.realpath(town.daemon_dir)]
    for keys, what in SERVER_PATHS.items():
        value: Any = config
        for key in keys:
            value = value.get(key) if isinstance(value, Mapping) else None
        if value is None:
            continue
        real = os.path.realpath(os.path.join(town.data_dir, str(value))) if str(value) else ""
        if not real or not any(_inside(real, folder) for folder in folders):
            where = "every folder" if not str(value) else f"outside {town.data_dir} and {town.daemon_dir}"
            raise ConfigError(
                f"dolt.server.{'.'.join(keys)} is {value!r}, {where}: {what}, where nobody checks who else "
                "can write; use a path inside the town's .dolt-data or daemon/, or set "
                "dolt.allow_outside_paths: true"
            )


RUN_FILES = ("pid_file", "state_file", "log_file", "lock_file", "config_file")


def check_run_files(town: Town) -> None:
    """Refuse before anything is spawned when a file a start writes has been planted."""
    for name in RUN_FILES:
        path = getattr(town, name)
        what = safefs.describe(path)
        if what is not None:
            raise safefs.unsafe(path, what)


def root_without_password(settings: DoltSettings) -> str | None:
    if os.geteuid() != 0 or settings.password:
        return None
    return (
        "the server runs as root and takes its root login without a password: every local user can "
        "reach it on loopback (and make it write backups as root); on a shared machine set dolt.password, "
        "or run gt-dolt as an ordinary user"
    )


def preflight(town: Town, settings: DoltSettings) -> Plan:
    check_network(settings)
    check_run_files(town)
    privilege.check_town(town)
    found = scan_data_dir(town)
    refusals = found.refusals()
    if refusals:
        raise UnsafeFile("the start would fail or expose data: " + "; ".join(refusals) + "; then start again")
    privilege.check_databases(privilege.served_folders(town))
    config = serverconfig.build(settings, town)
    check_server_paths(config, town, settings)
    clustered = "cluster" in config
    if not found.rigs and not clustered:  # a standby needs none: replication brings them
        raise NoRigs.in_town(town.data_dir)
    dolt = identify(find_dolt(settings.binary))
    notes = [note for note in (dolt.note(), root_without_password(settings)) if note]
    return Plan(dolt=dolt, rigs=found.names, config=config, notes=notes, clustered=clustered)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C back while a child is spawned and recorded, so it is never left untracked."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def discard_child(child: subprocess.Popen[bytes], town: Town, why: str) -> None:
    """Kill a child that never became a server and forget it: no orphan, no pid file, and the
    state says why it is not running.  A second Ctrl-C waits until the child is gone.
    """
    with interrupts_deferred():
        procs.end_child(child)
    # Already on an error path: that error wins over any failure to tidy the files.
    with contextlib.suppress(GastownError):
        if read_pid_file(town).pid == child.pid:
            remove_run_file(town, town.pid_file)
    with contextlib.suppress(GastownError):
        mark_stopped(town, last_error=why[:2000])


def _spawn(
    town: Town, settings: DoltSettings, plan: Plan, log_fd: int
) -> tuple[subprocess.Popen[bytes], psutil.Process]:
    command = [str(plan.dolt.path), "sql-server", "--config", str(town.config_file)]
    os.write(log_fd, f"=== {iso_time()} gastown-tasks: {' '.join(command)}\n".encode())
    child = subprocess.Popen(
        command,
        cwd=town.data_dir,
        stdin=subprocess.DEVNULL,
        stdout=log_fd,
        stderr=log_fd,
        start_new_session=True,  # a SIGHUP to the caller's terminal never reaches the server
        env=dolt_env(fencing.prepare(town, settings) if plan.clustered else None),  # a primary starts fenced
        umask=DOLT_UMASK,
    )
    try:
        proc = psutil.Process(child.pid)
        record = Record(pid=child.pid, create_time=proc.create_time(), host=settings.host, port=settings.port)
        write_pid_file(town, child.pid)
        write_state(town, state_of(town, record))
    except BaseException:
        discard_child(child, town, "its pid could not be recorded")
        raise
    return child, proc


PROBE_LIMIT = 100  # rigs probed after a failed start (each probe is one short `dolt log`)


def damaged_rigs(town: Town, plan: Plan) -> str:
    """Which rigs Dolt cannot open, after the server exited at start: Dolt's own message
    ("EOF", "corrupt manifest") does not name the database it choked on.
    """
    found = []
    for name in plan.rigs[:PROBE_LIMIT]:
        try:
            done = run_dolt(plan.dolt.path, "log", "-n", "1", cwd=town.rig_dir(name), timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode != 0:
            said = " ".join((done.stderr or done.stdout).split())[:200] or f"exit {done.returncode}"
            found.append(
                f"rig {name} at {town.rig_dir(name)} cannot be opened (Dolt says: {said}); "
                f"{damaged_rig_hint(town, name, dolt_command_hint(plan.dolt.path))}"
            )
    return ("\n" + "\n".join(found)) if found else ""


def launch(
    town: Town, settings: DoltSettings, plan: Plan, timeout: float, echo: Callable[[str], None] = print
) -> StartResult:
    """Start the server and return once it answers SQL and lists every rig."""
    ensure_daemon_dir(town)
    safefs.ensure_dir(town.sql_files_dir, root=town.root, mode=0o700)
    rotated = logrotate.set_aside_if_due(town, settings)  # one rename: the town is down no longer for it
    serverconfig.write_config(town, plan.config)
    log_offset = file_size(town.log_file, root=town.root)
    child: subprocess.Popen[bytes] | None = None
    try:
        # Ctrl-C is held back until the child is recorded, then raised here, where it undoes the start.
        with safefs.open_append(town.log_file, root=town.root) as log_fd, interrupts_deferred():
            child, proc = _spawn(town, settings, plan, log_fd)
        size = sum(disk_bytes(town).values())  # measured while Dolt starts up, not after it answers
        served = wait_ready(
            child,
            settings,
            plan.rigs,
            timeout,
            lambda missing: skipped_rigs(town, log_offset, missing, dolt_command_hint(plan.dolt.path)),
            lambda: read_since(town.log_file, log_offset, root=town.root),
            lambda announced: verify_started(proc, town, settings, plan.config, None, bound=announced),
        )
        wrong = verify_started(proc, town, settings, plan.config, plan.rigs)
        if wrong is not None:
            raise StartFailed(wrong)
        record = Record(
            pid=child.pid,
            create_time=proc.create_time(),
            host=settings.host,
            port=settings.port,
            databases=tuple(served),
            answered_at=iso_time(),
            disk_bytes=size,
        )
        write_state(town, state_of(town, record))
    except StartFailed as exc:
        exited = child is not None and child.poll() is not None
        if child is not None:
            discard_child(child, town, str(exc))
        damaged = damaged_rigs(town, plan) if exited else ""
        raise StartFailed(f"{exc}{damaged}\n{log_tail(town, log_offset)}") from None
    except BaseException as exc:  # refused credentials, Ctrl-C, anything unexpected: leave nothing behind
        if child is not None:
            discard_child(child, town, str(exc) or "start interrupted")
        raise
    notes = list(plan.notes)
    if rotated:
        notes.append(rotated)
    compressed = logrotate.compress_after_start(town, settings)  # the server answers meanwhile
    if compressed:
        notes.append(compressed)
    return StartResult(
        pid=child.pid,
        host=settings.host,
        port=settings.port,
        data_dir=town.data_dir,
        databases=served,
        started=True,
        log_file=town.log_file,
        notes=notes,
    )
