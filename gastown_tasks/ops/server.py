"""Start, stop, restart and inspect the town's one `dolt sql-server`.

A server is this town's only when `procs.town_server` proves it; everything else on the port is
somebody else's and is named, never signalled.  Mutating steps hold the town lock, so concurrent
starts end with one server.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from . import procs, sqlclient
from .binary import dolt_env, find_dolt
from .errors import GastownError, NoRigs, PortInUse, StartFailed, StopFailed
from .locking import town_lock
from .logfile import file_size, open_log_for_append
from .readiness import log_tail, skipped_rigs, wait_ready
from .rigs import rigs_on_disk
from .runfiles import (
    MAX_PID,
    PidFile,
    StateFile,
    ensure_daemon_dir,
    now_iso,
    read_pid_file,
    read_state,
    remove_file,
    write_pid_file,
    write_state,
)
from .settings import DoltSettings
from .town import Town

LOCK_SLACK = 15.0  # seconds beyond a start's and a stop's own timeouts that a waiter allows


@dataclass
class Running:
    """A live server proven to be this town's."""

    proc: psutil.Process
    port: int
    via: str  # "pid file" or "port" (started by hand or by another tool)

    @property
    def pid(self) -> int:
        return self.proc.pid


@dataclass
class StartResult:
    pid: int
    host: str
    port: int
    data_dir: Path
    databases: list[str]
    started: bool  # False when this town's server was already running
    log_file: Path
    notes: list[str] = field(default_factory=list)


@dataclass
class StopResult:
    was_running: bool
    pid: int | None = None
    killed: bool = False  # needed SIGKILL after the timeout
    notes: list[str] = field(default_factory=list)


@dataclass
class Status:
    running: bool
    exit_code: int
    pid: int | None
    host: str
    port: int
    data_dir: Path
    databases: list[str]
    databases_source: str  # "served" or "on disk"
    answering: bool
    started_at: str | None
    uptime_seconds: float | None
    connection: str
    pid_file_left: bool
    via: str | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "pid": self.pid,
            "host": self.host,
            "port": self.port,
            "data_dir": str(self.data_dir),
            "databases": self.databases,
            "databases_source": self.databases_source,
            "answering": self.answering,
            "started_at": self.started_at,
            "uptime_seconds": self.uptime_seconds,
            "connection": self.connection,
            "pid_file_left": self.pid_file_left,
            "found_via": self.via,
            "notes": self.notes,
            "exit_code": self.exit_code,
        }


def _flag_port(proc: psutil.Process) -> int | None:
    try:
        args = proc.cmdline()
    except psutil.Error:
        return None
    for i, arg in enumerate(args):
        value = None
        if arg in ("--port", "-P") and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--port="):
            value = arg[7:]
        if value is not None:
            return _valid_port(value)
    return None


def _valid_port(value: Any) -> int | None:
    """A port number from a file or another process's arguments, or None (never raises)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = int(value) if value.isascii() and value.isdigit() and len(value) <= 5 else None
    return value if isinstance(value, int) and 1 <= value <= 65535 else None


def _state_pid(state: dict[str, Any]) -> int | None:
    pid = state.get("pid")
    return pid if isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid <= MAX_PID else None


def _recorded_create_time(state: dict[str, Any], pid: int) -> float | None:
    created = state.get("create_time")
    if _state_pid(state) == pid and isinstance(created, int | float) and not isinstance(created, bool):
        return float(created)
    return None


def _port_of(proc: psutil.Process, state: dict[str, Any], settings: DoltSettings) -> int:
    """Where the server really listens: its sockets, else its --port flag, else the records."""
    listening = procs.listening_ports(proc)
    if settings.port in listening:
        return settings.port
    if listening:
        return listening[0]
    recorded = _valid_port(state.get("port")) if _state_pid(state) == proc.pid else None
    return _flag_port(proc) or recorded or settings.port


def find_running(
    town: Town,
    settings: DoltSettings,
    pid_file: PidFile | None = None,
    state: StateFile | None = None,
) -> Running | None:
    """This town's live server: via the pid file, the state, its port, or a process scan.

    The scan finds a server of this town started by hand on another port (or whose pid file
    was lost): starting a second one on the same data dir would only die on Dolt's lock.
    """
    pid_file = pid_file if pid_file is not None else read_pid_file(town.pid_file)
    data = (state if state is not None else read_state(town.state_file)).data
    state_pid = _state_pid(data) if data.get("running") else None

    def candidates() -> Iterator[tuple[int, str]]:
        # Cheapest evidence first: the port is only scanned when the files name no server.
        if pid_file.pid:
            yield pid_file.pid, "pid file"
        if state_pid is not None:
            yield state_pid, "state file"
        for pid in procs.listeners_on_port(settings.port):
            yield pid, "port"

    for pid, via in candidates():
        proc = procs.town_server(pid, town.data_dir, _recorded_create_time(data, pid))
        if proc is not None:
            return Running(proc, _port_of(proc, data, settings), via)
    for proc in procs.dolt_servers():
        if procs.serves_data_dir(proc, town.data_dir):
            return Running(proc, _port_of(proc, data, settings), "process scan")
    return None


@dataclass(frozen=True)
class Observed:
    """One reading of the run files and of the processes they point at."""

    pid_file: PidFile
    state: StateFile
    running: Running | None

    @property
    def problems(self) -> list[str]:
        """What is wrong with the files themselves, for the user's notes."""
        return [note for note in (self.pid_file.problem, self.state.problem) if note]


def observe(town: Town, settings: DoltSettings) -> Observed:
    pid_file = read_pid_file(town.pid_file)
    state = read_state(town.state_file)
    return Observed(pid_file, state, find_running(town, settings, pid_file, state))


def _found_notes(running: Running, town: Town, settings: DoltSettings) -> list[str]:
    """What a user should know about how the server was found and where it listens."""
    notes = []
    if running.via == "port":
        notes.append("found by its port: started by hand or by another tool")
    elif running.via == "process scan":
        notes.append(
            f"found by scanning processes: it serves {town.data_dir} but no pid file named it "
            "(started by hand or by another tool)"
        )
    if running.port != settings.port:
        notes.append(
            f"it listens on port {running.port}, not the configured port {settings.port}; "
            "gt-dolt restart moves it to the configured port"
        )
    return notes


def _state_record(
    town: Town, settings: DoltSettings, proc: psutil.Process, port: int, databases: list[str]
) -> dict[str, Any]:
    return {
        "running": True,
        "pid": proc.pid,
        "create_time": proc.create_time(),
        "host": settings.host,
        "port": port,
        "started_at": now_iso(),
        "data_dir": str(town.data_dir),
        "databases": databases,
        "log_file": str(town.log_file),
        "managed_by": "gastown-tasks",
    }


def record_running(town: Town, settings: DoltSettings, running: Running, databases: list[str]) -> None:
    """Write the pid and state files for a server proven to be this town's (one started by hand,
    or one whose files were lost), so `gt` and later commands find it the ordinary way.
    """
    write_pid_file(town.pid_file, running.pid)
    record = _state_record(town, settings, running.proc, running.port, databases)
    with contextlib.suppress(psutil.Error):
        record["started_at"] = datetime.fromtimestamp(running.proc.create_time(), UTC).isoformat(
            timespec="seconds"
        )
    write_state(town.state_file, record)


def mark_stopped(town: Town, **extra: Any) -> None:
    """Say in the state file that the server is not running, keeping its history."""
    data = read_state(town.state_file).data
    if data or extra:
        data.update({"running": False, "stopped_at": now_iso(), **extra})
        write_state(town.state_file, data)


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
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


def _discard_child(child: subprocess.Popen[bytes], town: Town, why: str) -> None:
    """Kill a child that never became a server and forget it: no orphan, no pid file, and the
    state says why it is not running.

    A second Ctrl-C is held back until the child is gone, so it cannot cut the clean-up short.
    """
    with _interrupts_deferred():
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    pid_file = read_pid_file(town.pid_file)
    # Already on an error path: that error wins over any failure to tidy the files.
    if pid_file.pid == child.pid:
        with contextlib.suppress(GastownError):
            remove_file(town.pid_file)
    with contextlib.suppress(GastownError):
        mark_stopped(town, last_error=why)


def _launch(town: Town, settings: DoltSettings, dolt: Path, rigs: list[str], timeout: float) -> StartResult:
    log_offset = file_size(town.log_file)
    try:
        log_fd = open_log_for_append(town.log_file)
    except OSError as exc:
        raise StartFailed(
            f"cannot open {town.log_file} for the server's output: {exc.strerror}; "
            f"make it a writable file in a writable {town.daemon_dir}, then retry"
        ) from None
    command = [
        str(dolt),
        "sql-server",
        "--host",
        settings.host,
        "--port",
        str(settings.port),
        "--data-dir",
        str(town.data_dir),
        "--loglevel",
        settings.log_level,
    ]
    child: subprocess.Popen[bytes] | None = None
    try:
        os.write(log_fd, f"=== {now_iso()} gastown-tasks: {' '.join(command)}\n".encode())
        # Ctrl-C is held back until the child is recorded, then raised here, where it undoes the start.
        with _interrupts_deferred():
            child = subprocess.Popen(
                command,
                cwd=town.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                start_new_session=True,
                env=dolt_env(),
            )
            proc = psutil.Process(child.pid)
            write_pid_file(town.pid_file, child.pid)
            write_state(town.state_file, _state_record(town, settings, proc, settings.port, []))
    except BaseException:
        if child is not None:
            _discard_child(child, town, "start interrupted")
        raise
    finally:
        os.close(log_fd)

    try:
        served = wait_ready(
            child,
            settings,
            rigs,
            timeout,
            lambda missing: skipped_rigs(town, log_offset, missing),
        )
        write_state(town.state_file, _state_record(town, settings, proc, settings.port, served))
    except StartFailed as exc:
        _discard_child(child, town, str(exc))
        raise StartFailed(f"{exc}\n{log_tail(town, log_offset)}") from None
    except BaseException as exc:  # Ctrl-C or anything unexpected: leave nothing behind
        _discard_child(child, town, str(exc) or "start interrupted")
        raise
    return StartResult(child.pid, settings.host, settings.port, town.data_dir, served, True, town.log_file)


def start(town: Town, settings: DoltSettings, timeout: float | None = None) -> StartResult:
    """Start this town's server and return once it answers SQL and lists every rig.

    Idempotent: a running server of this town is reported, not restarted.
    """
    timeout = (
        settings.start_timeout
        if timeout is None
        else settings.with_overrides(start_timeout=timeout).start_timeout
    )
    ensure_daemon_dir(town.daemon_dir)
    rigs = [rig.name for rig in rigs_on_disk(town)]
    if not rigs:
        raise NoRigs(
            f"no rig databases in {town.data_dir}; create one first: "
            "invoke dolt.init-rig <name> (or gt-dolt init-rig <name>)"
        )
    dolt = find_dolt(settings.binary)
    with town_lock(town, wait=timeout + settings.stop_timeout + LOCK_SLACK):
        seen = observe(town, settings)
        pid_file, running, notes = seen.pid_file, seen.running, seen.problems
        if running is not None:
            if pid_file.pid != running.pid:
                write_pid_file(town.pid_file, running.pid)
                notes.append(f"recorded pid {running.pid} in {town.pid_file}")
            notes.extend(_found_notes(running, town, settings))
            served = sqlclient.served_databases(settings.with_overrides(port=running.port)) or []
            return StartResult(
                running.pid,
                settings.host,
                running.port,
                town.data_dir,
                served,
                False,
                town.log_file,
                notes,
            )
        if pid_file.exists:
            remove_file(town.pid_file)
            why = pid_file.problem or f"pid {pid_file.pid} is not this town's server"
            notes.append(f"removed a stale pid file ({why})")
        holders = procs.port_holders(settings.host, settings.port)
        if holders:
            raise PortInUse(
                f"port {settings.port} is in use by "
                + ", ".join(holder.describe() for holder in holders)
                + "; it is not this town's Dolt server, so it was left alone. "
                "Stop it, or choose another port: dolt.port in invoke.yaml, GT_DOLT_PORT, or --port"
            )
        result = _launch(town, settings, dolt, rigs, timeout)
        result.notes[:0] = notes
        return result


def stop(town: Town, settings: DoltSettings, timeout: float | None = None) -> StopResult:
    """Stop this town's server (ours or started by hand): SIGTERM, then SIGKILL after timeout."""
    timeout = (
        settings.stop_timeout
        if timeout is None
        else settings.with_overrides(stop_timeout=timeout).stop_timeout
    )
    with town_lock(town, wait=settings.start_timeout + timeout + LOCK_SLACK):
        seen = observe(town, settings)
        pid_file, state, running, notes = seen.pid_file, seen.state, seen.running, seen.problems
        if running is None:
            if pid_file.exists:
                remove_file(town.pid_file)
                notes.append(f"removed a stale pid file {town.pid_file}")
            if state.data.get("running"):
                mark_stopped(town)
            return StopResult(False, notes=notes)
        try:
            killed = procs.terminate(running.proc, timeout)
        except psutil.AccessDenied:
            raise StopFailed(
                f"not allowed to signal dolt sql-server pid {running.pid}; "
                "stop it as the user that started it"
            ) from None
        if not procs.wait_exited(running.proc, 0):
            raise StopFailed(f"dolt sql-server pid {running.pid} is still running after SIGKILL")
        if read_pid_file(town.pid_file).exists:
            remove_file(town.pid_file)
        mark_stopped(town)
        if killed:
            notes.append(f"it ignored SIGTERM for {timeout:g}s and was killed (SIGKILL)")
        return StopResult(True, running.pid, killed, notes)


def restart(
    town: Town, settings: DoltSettings, timeout: float | None = None
) -> tuple[StopResult, StartResult]:
    stopped = stop(town, settings)
    return stopped, start(town, settings, timeout)


def status(town: Town, settings: DoltSettings) -> Status:
    """The truth from the processes; the files only say where to look."""
    seen = observe(town, settings)
    pid_file, state, running, notes = seen.pid_file, seen.state, seen.running, seen.problems
    if running is None:
        on_disk = [rig.name for rig in rigs_on_disk(town)]
        if pid_file.exists:
            if pid_file.pid:
                notes.append(f"{town.pid_file} names pid {pid_file.pid}, which is not this town's server")
            notes.append("a stale pid file was left; gt-dolt start (or stop) cleans it up")
        holders = procs.port_holders(settings.host, settings.port)
        if holders:
            notes.append(
                f"port {settings.port} is held by "
                + ", ".join(h.describe() for h in holders)
                + ", which is not this town's server"
            )
        return Status(
            False,
            1 if pid_file.exists else 3,
            None,
            settings.host,
            settings.port,
            town.data_dir,
            on_disk,
            "on disk",
            False,
            None,
            None,
            settings.connection_string,
            pid_file.exists,
            None,
            notes,
        )
    target = settings.with_overrides(port=running.port)
    served = sqlclient.served_databases(target)
    try:
        created = running.proc.create_time()
    except psutil.Error:
        created = time.time()
    recorded = state.data.get("started_at") if state.data.get("pid") == running.pid else None
    started_at = recorded or datetime.fromtimestamp(created, UTC).isoformat(timespec="seconds")
    if served is None:
        notes.append(f"the process is alive but does not answer SQL on {settings.host}:{running.port}")
    notes.extend(_found_notes(running, town, settings))
    return Status(
        True,
        0,
        running.pid,
        settings.host,
        running.port,
        town.data_dir,
        served if served is not None else [rig.name for rig in rigs_on_disk(town)],
        "served" if served is not None else "on disk",
        served is not None,
        started_at,
        round(time.time() - created, 1),
        target.connection_string,
        pid_file.exists,
        running.via,
        notes,
    )


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
