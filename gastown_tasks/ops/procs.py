"""Which process is which: proving a pid is this town's `dolt sql-server` before acting on it.

Only psutil is used (no lsof/ps).  Every destructive caller goes through `town_server`, which
default-denies: no evidence that a process serves this town's data dir means it is not ours.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import psutil

CREATE_TIME_TOLERANCE = 1.0  # seconds; psutil's create_time is rounded to clock ticks


def _real(path: str | os.PathLike[str]) -> str:
    return os.path.realpath(os.fspath(path).removesuffix(" (deleted)"))


def _process(pid: int) -> psutil.Process | None:
    if pid <= 0:  # os.kill(0, …) would signal our own process group
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:
        return []


def is_dolt_sql_server(proc: psutil.Process) -> bool:
    args = _cmdline(proc)
    if len(args) < 2:
        return False
    return os.path.basename(args[0]).startswith("dolt") and "sql-server" in args[1:]


def _flag_value(args: list[str], *names: str) -> str | None:
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith(name + "="):
                return arg[len(name) + 1 :]
    return None


def serves_data_dir(proc: psutil.Process, data_dir: Path) -> bool:
    """Whether the process's arguments or cwd point at `data_dir` (evidence, Gas Town's order)."""
    args = _cmdline(proc)
    try:
        cwd = proc.cwd()
    except psutil.Error:
        cwd = None
    want = _real(data_dir)
    flagged = _flag_value(args, "--data-dir")
    if flagged is not None:
        base = cwd.removesuffix(" (deleted)") if cwd else "/"
        return _real(os.path.join(base, flagged)) == want
    config = _flag_value(args, "--config")
    if config is not None:
        base = cwd.removesuffix(" (deleted)") if cwd else "/"
        return os.path.dirname(_real(os.path.join(base, config))) == want
    return cwd is not None and _real(cwd) == want


def same_process(proc: psutil.Process, recorded_create_time: float | None) -> bool:
    if recorded_create_time is None:
        return False
    try:
        return abs(proc.create_time() - float(recorded_create_time)) < CREATE_TIME_TOLERANCE
    except (psutil.Error, TypeError, ValueError):
        return False


def town_server(pid: int, data_dir: Path, recorded_create_time: float | None = None) -> psutil.Process | None:
    """The live `dolt sql-server` at `pid` if it is provably this town's, else None."""
    proc = _process(pid)
    if proc is None or not is_dolt_sql_server(proc):
        return None
    if same_process(proc, recorded_create_time) or serves_data_dir(proc, data_dir):
        return proc
    return None


def listeners_on_port(port: int) -> list[int]:
    """Pids with a TCP socket listening on `port` (any address)."""
    pids: set[int] = set()
    unseen = False
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                if conn.pid:
                    pids.add(conn.pid)
                else:
                    unseen = True
    except psutil.AccessDenied:
        unseen = True
    if unseen or not pids:
        # Sockets of other users are hidden from system-wide scans; ask the processes we can see.
        for proc in psutil.process_iter():
            try:
                for conn in proc.net_connections(kind="tcp"):
                    if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port:
                        pids.add(proc.pid)
            except psutil.Error:
                continue
    return sorted(pids)


def port_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether a TCP connect to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class Holder:
    pid: int | None
    command: str

    def describe(self) -> str:
        if self.pid is None:
            return self.command
        return f"pid {self.pid} ({self.command})"


def describe_pid(pid: int) -> str:
    proc = _process(pid)
    if proc is None:
        return "exited"
    args = _cmdline(proc)
    if args:
        text = " ".join(args)
        return text if len(text) <= 120 else text[:117] + "..."
    try:
        return proc.name()
    except psutil.Error:
        return "command not visible"


def port_holders(host: str, port: int) -> list[Holder]:
    """Who holds the port, as far as this user can see."""
    holders = [Holder(pid, describe_pid(pid)) for pid in listeners_on_port(port)]
    if not holders and port_answers(host, port):
        holders.append(Holder(None, "a process this user cannot see"))
    return holders


def dolt_servers() -> list[psutil.Process]:
    """Every live `dolt sql-server` this user can see."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and is_dolt_sql_server(proc):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def terminate(proc: psutil.Process, timeout: float) -> bool:
    """SIGTERM, wait up to `timeout`, then SIGKILL. True when it needed SIGKILL.

    Signals go through the same psutil.Process that was verified, which refuses to signal a
    different process that reused the pid.
    """
    try:
        proc.terminate()
    except psutil.NoSuchProcess:
        return False
    _, alive = psutil.wait_procs([proc], timeout=timeout)
    if not alive:
        return False
    for survivor in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            survivor.kill()
    psutil.wait_procs(alive, timeout=10)
    return True
