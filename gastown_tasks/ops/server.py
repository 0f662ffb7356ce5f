"""Start, stop, restart and inspect the town's one `dolt sql-server`.

A server is this town's only when `procs.town_server` proves it; everything else on the port is
somebody else's and is named, never signalled.  Mutating steps hold the town lock, so concurrent
starts end with one server.
"""

from __future__ import annotations

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
from .errors import NoRigs, PortInUse, StartFailed, StopFailed
from .locking import town_lock
from .logfile import file_size, last_lines, open_log_for_append
from .rigs import rigs_on_disk
from .runfiles import (
    PidFile,
    StateFile,
    ensure_daemon_dir,
    read_pid_file,
    read_state,
    remove_file,
    write_pid_file,
    write_state,
)
from .settings import DoltSettings
from .town import Town

LOG_TAIL_LINES = 20
LOCK_SLACK = 15.0  # seconds beyond a start's and a stop's own timeouts that a waiter allows


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
        if arg in ("--port", "-P") and i + 1 < len(args) and args[i + 1].isdigit():
            return int(args[i + 1])
        if arg.startswith("--port=") and arg[7:].isdigit():
            return int(arg[7:])
    return None


def _recorded_create_time(state: dict[str, Any], pid: int) -> float | None:
    if state.get("pid") == pid and isinstance(state.get("create_time"), (int, float)):
        return float(state["create_time"])
    return None


def find_running(
    town: Town,
    settings: DoltSettings,
    pid_file: PidFile | None = None,
    state: StateFile | None = None,
) -> Running | None:
    """This town's live server: via the pid file, the state, or whoever listens on the port."""
    pid_file = pid_file if pid_file is not None else read_pid_file(town.pid_file)
    data = (state if state is not None else read_state(town.state_file)).data
    candidates: list[tuple[int, str]] = []
    if pid_file.pid:
        candidates.append((pid_file.pid, "pid file"))
    if isinstance(data.get("pid"), int) and data.get("running"):
        candidates.append((data["pid"], "state file"))
    for pid, via in candidates:
        proc = procs.town_server(pid, town.data_dir, _recorded_create_time(data, pid))
        if proc is not None:
            return Running(proc, _flag_port(proc) or data.get("port") or settings.port, via)
    for pid in procs.listeners_on_port(settings.port):
        proc = procs.town_server(pid, town.data_dir, _recorded_create_time(data, pid))
        if proc is not None:
            return Running(proc, settings.port, "port")
    return None


def _state_record(
    town: Town, settings: DoltSettings, proc: psutil.Process, port: int, databases: list[str]
) -> dict[str, Any]:
    return {
        "running": True,
        "pid": proc.pid,
        "create_time": proc.create_time(),
        "host": settings.host,
        "port": port,
        "started_at": _now(),
        "data_dir": str(town.data_dir),
        "databases": databases,
        "log_file": str(town.log_file),
        "managed_by": "gastown-tasks",
    }


def _mark_stopped(town: Town, **extra: Any) -> None:
    """Keep the state's history; just say it is not running any more."""
    data = read_state(town.state_file).data
    if data or extra:
        data.update({"running": False, "stopped_at": _now(), **extra})
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


def _log_tail(town: Town, offset: int) -> str:
    lines = last_lines(town.log_file, LOG_TAIL_LINES, start=offset)
    if not lines:
        return f"(nothing in {town.log_file})"
    return f"last lines of {town.log_file}:\n" + "\n".join(f"  {line}" for line in lines)


def _wait_ready(
    child: subprocess.Popen[bytes],
    settings: DoltSettings,
    port: int,
    rigs: list[str],
    timeout: float,
) -> list[str]:
    """Poll (milliseconds apart) until the server answers SQL and lists every rig.

    Raises StartFailed("exited …") or StartFailed("timeout …"); the caller cleans up.
    """
    import pymysql

    target = settings.with_overrides(port=port)
    deadline = time.monotonic() + timeout
    delay = 0.001
    conn = None
    served: list[str] = []
    answered = False
    try:
        while True:
            code = child.poll()
            if code is not None:
                raise StartFailed(f"dolt sql-server exited with code {code} before it was ready")
            remaining = deadline - time.monotonic()
            if conn is None and remaining > 0:
                try:
                    conn = sqlclient.connect(target, timeout=min(2.0, max(remaining, 0.05)))
                except pymysql.err.MySQLError:
                    conn = None
            if conn is not None:
                try:
                    served = sqlclient.show_databases(conn)
                    answered = True
                    if not sqlclient.missing(rigs, served):
                        return served
                except pymysql.err.MySQLError:
                    conn.close()
                    conn = None
            if time.monotonic() >= deadline:
                if answered:
                    waited = (
                        f"it answered SQL on {settings.host}:{port} but did not list "
                        f"{', '.join(sqlclient.missing(rigs, served))}"
                    )
                else:
                    waited = f"it never answered SQL on {settings.host}:{port}"
                raise StartFailed(
                    f"dolt sql-server (pid {child.pid}) was not ready within {timeout:g}s: {waited}; "
                    "raise dolt.start_timeout (or --timeout) if the databases are large"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
    finally:
        if conn is not None:
            conn.close()


def _discard_child(child: subprocess.Popen[bytes], town: Town) -> None:
    """Kill a child that never became a server and forget it: no orphan, no pid file."""
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    pid_file = read_pid_file(town.pid_file)
    if pid_file.pid == child.pid:
        remove_file(town.pid_file)


def _launch(town: Town, settings: DoltSettings, dolt: Path, rigs: list[str], timeout: float) -> StartResult:
    log_offset = file_size(town.log_file)
    log_fd = open_log_for_append(town.log_file)
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
    try:
        os.write(log_fd, f"=== {_now()} gastown-tasks: {' '.join(command)}\n".encode())
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
            try:
                proc = psutil.Process(child.pid)
                write_pid_file(town.pid_file, child.pid)
                write_state(town.state_file, _state_record(town, settings, proc, settings.port, []))
            except BaseException:
                _discard_child(child, town)
                raise
    finally:
        os.close(log_fd)

    try:
        served = _wait_ready(child, settings, settings.port, rigs, timeout)
    except StartFailed as exc:
        _discard_child(child, town)
        _mark_stopped(town, last_error=str(exc))
        raise StartFailed(f"{exc}\n{_log_tail(town, log_offset)}") from None
    except BaseException:  # Ctrl-C or anything unexpected: leave nothing behind
        _discard_child(child, town)
        _mark_stopped(town, last_error="start interrupted")
        raise
    record = _state_record(town, settings, proc, settings.port, served)
    write_state(town.state_file, record)
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
        pid_file = read_pid_file(town.pid_file)
        state = read_state(town.state_file)
        notes = [note for note in (pid_file.problem, state.problem) if note]
        running = find_running(town, settings, pid_file, state)
        if running is not None:
            if pid_file.pid != running.pid:
                write_pid_file(town.pid_file, running.pid)
                notes.append(f"recorded pid {running.pid} in {town.pid_file}")
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
        pid_file = read_pid_file(town.pid_file)
        state = read_state(town.state_file)
        notes = [note for note in (pid_file.problem, state.problem) if note]
        running = find_running(town, settings, pid_file, state)
        if running is None:
            if pid_file.exists:
                remove_file(town.pid_file)
                notes.append(f"removed a stale pid file {town.pid_file}")
            if state.data.get("running"):
                _mark_stopped(town)
            return StopResult(False, notes=notes)
        try:
            killed = procs.terminate(running.proc, timeout)
        except psutil.AccessDenied:
            raise StopFailed(
                f"not allowed to signal dolt sql-server pid {running.pid}; "
                "stop it as the user that started it"
            ) from None
        if running.proc.is_running() and running.proc.status() != psutil.STATUS_ZOMBIE:
            raise StopFailed(f"dolt sql-server pid {running.pid} is still running after SIGKILL")
        if read_pid_file(town.pid_file).exists:
            remove_file(town.pid_file)
        _mark_stopped(town)
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
    pid_file = read_pid_file(town.pid_file)
    state = read_state(town.state_file)
    notes = [note for note in (pid_file.problem, state.problem) if note]
    running = find_running(town, settings, pid_file, state)
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
    if running.via == "port":
        notes.append("found by its port: started by hand or by another tool")
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
