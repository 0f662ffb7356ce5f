"""Which process is which: the evidence that a pid is this town's `dolt sql-server`.

Only psutil is used (no lsof/ps).  Every destructive caller goes through `town_server`, which
default-denies: a process is a candidate only when it runs as our uid, is a `dolt … sql-server`,
and its arguments or working folder point at this town's data dir.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import psutil

from ..polling import poll_until
from ..settings import parse_port
from . import tcp

CREATE_TIME_TOLERANCE = 1.0  # seconds; psutil's create_time is rounded to clock ticks


def _real(path: str | os.PathLike[str]) -> str:
    return os.path.realpath(os.fspath(path).removesuffix(" (deleted)"))


def live(pid: int) -> psutil.Process | None:
    """The live process at `pid` (never pid 0 or below: os.kill(0, …) signals our own group)."""
    if pid <= 0:
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except psutil.Error:
        return None


def cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:
        return []


def flag_value(args: list[str], *names: str) -> str | None:
    """The value of the first of `names` given as `--name value` or `--name=value`."""
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith(name + "="):
                return arg[len(name) + 1 :]
    return None


def owner_uid(proc: psutil.Process) -> int | None:
    try:
        return proc.uids().effective
    except psutil.Error:
        return None


def owner_name(proc: psutil.Process) -> str:
    try:
        return proc.username()
    except (psutil.Error, KeyError):
        uid = owner_uid(proc)
        return f"uid {uid}" if uid is not None else "an unknown user"


def runs_as_us(proc: psutil.Process) -> bool:
    return owner_uid(proc) == os.geteuid()


def is_dolt_sql_server(proc: psutil.Process) -> bool:
    args = cmdline(proc)
    return len(args) >= 2 and os.path.basename(args[0]).startswith("dolt") and "sql-server" in args[1:]


def _cwd(proc: psutil.Process) -> str | None:
    try:
        return proc.cwd()
    except psutil.Error:
        return None


def open_paths(proc: psutil.Process) -> list[str]:
    try:
        return [_real(f.path) for f in proc.open_files()]
    except psutil.Error:
        return []


def _under(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip(os.sep) + os.sep)


def held_children(proc: psutil.Process, folder: Path) -> set[str]:
    """The names of `folder`'s entries under which `proc` holds an open file (one read of its
    descriptors, one pass over them: a server of 1000 rigs holds some 3000)."""
    base = _real(folder).rstrip(os.sep) + os.sep
    return {path[len(base) :].split(os.sep, 1)[0] for path in open_paths(proc) if path.startswith(base)}


def served_data_dir(proc: psutil.Process) -> str | None:
    """The folder a `dolt sql-server` really serves, from what it holds, not from paths as they are now.

    Its working folder and open files are the inodes it opened, named as they are now; a path
    given on its command line is only believed when it holds some of them (a symlink planted since
    its start cannot move a server into another town).  Ours and Gas Town's start it with the data
    dir as working folder; a server started with --data-dir from elsewhere holds files there.
    """
    cwd = _cwd(proc)
    here = _real(cwd) if cwd is not None else None
    args = cmdline(proc)
    base = cwd.removesuffix(" (deleted)") if cwd else "/"
    flagged = flag_value(args, "--data-dir")
    config = flag_value(args, "--config")
    named = _real(os.path.join(base, flagged)) if flagged is not None else None
    if named is None and config is not None:
        named = os.path.dirname(_real(os.path.join(base, config)))
    if named is not None and named != here and any(_under(p, named) for p in open_paths(proc)):
        return named
    return here


def serves_data_dir(proc: psutil.Process, data_dir: Path) -> bool:
    """Whether the process works in `data_dir` (its working folder) or holds files under it."""
    real = _real(data_dir)
    cwd = _cwd(proc)
    if cwd is not None and _real(cwd) == real:
        return True
    return any(_under(p, real) for p in open_paths(proc))


def flag_port(proc: psutil.Process) -> int | None:
    return parse_port(flag_value(cmdline(proc), "--port", "-P"))


def same_process(proc: psutil.Process, recorded_create_time: float | None) -> bool:
    if recorded_create_time is None:
        return False
    try:
        return abs(proc.create_time() - recorded_create_time) < CREATE_TIME_TOLERANCE
    except psutil.Error:
        return False


def serves_town(
    proc: psutil.Process, data_dir: Path, config_file: Path, info_pid: Callable[[], int | None] = lambda: None
) -> bool:
    """Whether the process serves the town's whole `data_dir`, never one rig inside it.

    It must work there (its working folder, or files it holds: a path planted since its start
    cannot move a server into another town), and what it was told to serve must be that folder:
    the town's config file, or `--data-dir` naming it, or, with neither, its working folder.  A
    server started with a config of its own serves the data dir when Dolt's own record there
    (`.dolt/sql-server.info`, read by the caller, only when asked: `info_pid()`) names it.  A server started by
    hand in one rig's folder holds files in the data dir too, but serves that rig alone.
    """
    real = _real(data_dir)
    cwd = _cwd(proc)
    here = _real(cwd) if cwd is not None else None
    if here != real and not any(_under(p, real) for p in open_paths(proc)):
        return False
    args = cmdline(proc)
    base = cwd.removesuffix(" (deleted)") if cwd else "/"
    config = flag_value(args, "--config")
    if config is not None:
        return _real(os.path.join(base, config)) == _real(config_file) or info_pid() == proc.pid
    flagged = flag_value(args, "--data-dir")
    if flagged is not None:
        return _real(os.path.join(base, flagged)) == real
    return here == real


def looks_like_town_server(
    proc: psutil.Process, data_dir: Path, config_file: Path, info_pid: Callable[[], int | None] = lambda: None
) -> bool:
    """A live `dolt sql-server` serving the town's data dir (`serves_town`), whoever runs it.

    A create_time match alone proves only that the pid was not reused, not whose server it is: a
    town copied with `cp -r` while its server ran carries the original's run files, while that
    server still works in the original's data dir.
    """
    return is_dolt_sql_server(proc) and serves_town(proc, data_dir, config_file, info_pid)


def listen_addresses(proc: psutil.Process) -> list[tuple[str, int]]:
    """Every (address, port) `proc` listens on over TCP (empty when they cannot be seen)."""
    try:
        conns = proc.net_connections(kind="tcp")
    except psutil.Error:
        return []
    return sorted({(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN and c.laddr})


def listening_ports(proc: psutil.Process) -> list[int]:
    """The TCP ports `proc` listens on (empty when they cannot be seen)."""
    try:
        conns = proc.net_connections(kind="tcp")
    except psutil.Error:
        return []
    return sorted({c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN and c.laddr})


def listeners_on_port(port: int) -> list[int]:
    """Pids with a TCP socket listening on `port` (any address); reads every socket of the machine
    (10-15 ms on a busy one), so callers first check that the port answers."""
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
    if unseen:
        # Sockets of other users hide their pid (or the scan is refused, as on macOS): ask the
        # processes we can see.
        for proc in psutil.process_iter():
            if port in listening_ports(proc):
                pids.add(proc.pid)
    return sorted(pids)


class Holder(NamedTuple):
    pid: int | None
    command: str

    def describe(self) -> str:
        return self.command if self.pid is None else f"pid {self.pid} ({self.command})"


def describe_pid(pid: int) -> str:
    """A short description for messages: whose Dolt server it is and its owner, or its command."""
    proc = live(pid)
    if proc is None:
        return "exited"
    owner = "" if runs_as_us(proc) else f", run by {owner_name(proc)}"
    if is_dolt_sql_server(proc):
        served = served_data_dir(proc)
        return (f"dolt sql-server serving {served}" if served else "dolt sql-server") + owner
    args = cmdline(proc)
    if args:
        text = " ".join(" ".join(args).split())  # one line, whatever the arguments hold
        return (text if len(text) <= 120 else text[:117] + "...") + owner
    try:
        return proc.name() + owner
    except psutil.Error:
        return "command not visible"


def port_holders(host: str, port: int) -> list[Holder]:
    """Who holds the port, as far as this user can see.

    A refused connect (well under a millisecond) proves nobody listens where we would; only a port
    that answers is worth the scan that names its holder.
    """
    if not tcp.answers(host, port):
        return []
    holders = [Holder(pid, describe_pid(pid)) for pid in listeners_on_port(port)]
    return holders or [Holder(None, "a process this user cannot see")]


def listeners_where(host: str, port: int) -> list[int]:
    """Pids listening where a server on host:port would: none without the scan when a connect is
    refused."""
    return listeners_on_port(port) if tcp.answers(host, port) else []


def dolt_servers() -> list[psutil.Process]:
    """Every live `dolt sql-server` this user can see (any owner)."""
    found = []
    for proc in psutil.process_iter():
        try:
            # The arguments first: most processes are not Dolt, and a zombie has none.
            if is_dolt_sql_server(proc) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _exited(proc: psutil.Process) -> bool:
    """Gone, or a zombie: a zombie has exited, and only its parent can reap it."""
    try:
        proc.wait(timeout=0)  # reaps it when it is our child
        return True
    except psutil.TimeoutExpired:
        pass
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        pass
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:
        return not proc.is_running()


def wait_exited(proc: psutil.Process, timeout: float) -> bool:
    """Wait until `proc` has exited (reaping it when it is our child); False after `timeout`.

    psutil's own wait treats a zombie whose parent is another process as alive, so a server
    started by a long-lived Python process and stopped from a shell would wait out the whole
    timeout and then be reported as having ignored SIGTERM.
    """
    return bool(poll_until(lambda: _exited(proc), timeout, max_delay=0.01))


def terminate(proc: psutil.Process, timeout: float) -> bool:
    """SIGTERM, wait up to `timeout`, then SIGKILL. True when it needed SIGKILL.

    Signals go through the same psutil.Process that was verified, which refuses to signal a
    different process that reused the pid.
    """
    try:
        proc.terminate()
    except psutil.NoSuchProcess:
        return False
    if wait_exited(proc, timeout):
        return False
    with contextlib.suppress(psutil.NoSuchProcess):
        proc.kill()
    wait_exited(proc, 10)
    return True


def end_child(child: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """End a child process of ours: SIGTERM, then SIGKILL after `grace` seconds; reaped either way."""
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
