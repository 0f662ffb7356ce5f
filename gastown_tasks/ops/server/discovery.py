"""Finding this town's running server, and recording it in the run files.

A process is this town's server only with proof: it runs as our uid, it is a `dolt … sql-server`
whose arguments or working folder point at this town's data dir, and it either listens on a port
or is the very process our run files recorded at its start (pid and create time).  Anything that
looks like this town's server without that proof is a `Suspect`: reported with its pid and owner,
never adopted and never signalled.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from typing import Literal, NamedTuple

import psutil

from ..errors import GastownError
from ..files import safefs
from ..files.runfiles import (
    PidFile,
    State,
    iso_time,
    parse_pid,
    read_pid_file,
    read_state,
    write_pid_file,
    write_state,
)
from ..host import procs
from ..settings import DoltSettings
from ..town import Town

Via = Literal["pid file", "state file", "port", "process scan"]


class Running(NamedTuple):
    """A live server proven to be this town's."""

    proc: psutil.Process
    port: int  # where it listens (the configured port when it listens there), else its flag
    found_via: Via
    listening: bool

    @property
    def pid(self) -> int:
        return self.proc.pid

    def create_time(self) -> float | None:
        try:
            return self.proc.create_time()
        except psutil.Error:
            return None


NOT_OURS = "it looks like this town's server but is not provably ours"
STOP_AS_OWNER = "stop it as the user that runs it, then retry"


class Suspect(NamedTuple):
    """A process that looks like this town's server but is not provably ours, or not the town's."""

    pid: int
    owner: str
    why: str
    verdict: str = NOT_OURS  # what it is, for the user
    remedy: str = STOP_AS_OWNER

    def describe(self) -> str:
        return f"pid {self.pid} (run by {self.owner}) {self.why}"

    def sentence(self) -> str:
        return f"{self.describe()}: {self.verdict}, so it was neither adopted nor signalled"


def lone_rig(proc: psutil.Process, town: Town) -> Suspect | None:
    """A Dolt server of ours serving one rig's folder (`cd .dolt-data/hq && dolt sql-server`): it
    holds that rig's lock, so the town's server cannot serve it, yet it serves no other rig."""
    served = procs.served_data_dir(proc)
    data = os.path.realpath(town.data_dir)
    if served is None or not served.startswith(data + os.sep) or not procs.runs_as_us(proc):
        return None
    ports = procs.listening_ports(proc)
    where = f"port {ports[0]}" if ports else "no port"
    return Suspect(
        proc.pid,
        procs.owner_name(proc),
        f"serves only {served} ({where}), not the town's {town.data_dir}",
        verdict="it holds that rig's lock, so the town's server could not serve it",
        remedy=f"stop it (gt-dolt stop-rogue --pid {proc.pid}), then retry",
    )


class Observed(NamedTuple):
    """One reading of the run files and of the processes they point at."""

    pid_file: PidFile
    state: State
    running: Running | None
    suspects: tuple[Suspect, ...] = ()
    servers: tuple[psutil.Process, ...] = ()  # every server of ours on this data dir (doctor asks)

    @property
    def problems(self) -> list[str]:
        """What is wrong with the files and the processes, for the user's notes."""
        notes = list(dict.fromkeys(note for note in (self.pid_file.problem, self.state.problem) if note))
        notes += [suspect.sentence() for suspect in self.suspects]
        return notes


def dolt_info_pid(town: Town) -> Callable[[], int | None]:
    """The pid in Dolt's own record of the server on the data dir (`.dolt-data/.dolt/sql-server.info`,
    "PID:PORT:SECRET", 0600), read like any run file, once and only when asked; None when absent
    or not ours."""

    @functools.cache
    def read() -> int | None:
        try:
            raw = safefs.read_bytes(town.data_dir / ".dolt" / "sql-server.info", 4096, root=town.root)
        except GastownError:
            return None
        return parse_pid(raw.split(b":", 1)[0].decode("ascii", "replace").strip()) if raw else None

    return read


def _judge(
    proc: psutil.Process,
    via: Via,
    town: Town,
    settings: DoltSettings,
    state: State,
    info_pid: Callable[[], int | None] = lambda: None,
) -> Running | Suspect | None:
    recorded = state.created(proc.pid)
    if not procs.looks_like_town_server(proc, town.data_dir, town.config_file, info_pid):
        return lone_rig(proc, town) if procs.is_dolt_sql_server(proc) else None
    if not procs.runs_as_us(proc):
        return Suspect(proc.pid, procs.owner_name(proc), "runs as another user")
    if state.port is not None and state.answered(proc.pid) and procs.same_process(proc, recorded):
        # Recorded when this very process answered on that port, and a live server keeps its
        # listening socket: reading every socket of the machine would prove nothing more.
        return Running(proc=proc, port=state.port, found_via=via, listening=True)
    ports = procs.listening_ports(proc)
    if ports:
        port = settings.port if settings.port in ports else ports[0]
        return Running(proc=proc, port=port, found_via=via, listening=True)
    if procs.same_process(proc, recorded):
        recorded_port = state.port if state.pid == proc.pid and state.port else procs.flag_port(proc)
        return Running(proc=proc, port=recorded_port or settings.port, found_via=via, listening=False)
    return Suspect(proc.pid, procs.owner_name(proc), "listens on no port and no run file records its start")


def find_running(
    town: Town,
    settings: DoltSettings,
    pid_file: PidFile | None = None,
    state: State | None = None,
) -> tuple[Running | None, tuple[Suspect, ...]]:
    """This town's live server, by the pid file, the state, its port, or a process scan.

    The scan finds a server of this town started by hand on another port (or whose pid file was
    lost): starting a second one on the same data dir would only die on Dolt's lock.
    """
    pid_file = pid_file if pid_file is not None else read_pid_file(town)
    state = state if state is not None else read_state(town)
    suspects: list[Suspect] = []
    seen: set[int] = set()
    info_pid = dolt_info_pid(town)

    def candidates() -> Iterator[tuple[psutil.Process, Via]]:
        # Cheapest evidence first: the port is only scanned when the files name no server.
        named: list[tuple[int | None, Via]] = [(pid_file.pid, "pid file")]
        if state.running:
            named.append((state.pid, "state file"))
        for pid, via in named:
            proc = procs.live(pid) if pid else None
            if proc is not None:
                yield proc, via
        for pid in procs.listeners_where(settings.host, settings.port):
            proc = procs.live(pid)
            if proc is not None:
                yield proc, "port"
        for proc in procs.dolt_servers():
            yield proc, "process scan"

    for proc, via in candidates():
        if proc.pid in seen:
            continue
        seen.add(proc.pid)
        verdict = _judge(proc, via, town, settings, state, info_pid)
        if isinstance(verdict, Running):
            return verdict, tuple(suspects)
        if isinstance(verdict, Suspect):
            suspects.append(verdict)
    return None, tuple(suspects)


def observe(town: Town, settings: DoltSettings, *, every_server: bool = False) -> Observed:
    """The run files and the server they lead to; with `every_server`, all of ours on this data dir."""
    pid_file = read_pid_file(town)
    state = read_state(town)
    running, suspects = find_running(town, settings, pid_file, state)
    servers: list[psutil.Process] = []
    if every_server:
        info = dolt_info_pid(town)
        servers = [
            p
            for p in procs.dolt_servers()
            if procs.serves_town(p, town.data_dir, town.config_file, info) and procs.runs_as_us(p)
        ]
        if running is not None and running.pid not in {p.pid for p in servers}:
            servers.append(running.proc)
    return Observed(pid_file=pid_file, state=state, running=running, suspects=suspects, servers=tuple(servers))


def found_notes(running: Running, town: Town, settings: DoltSettings) -> list[str]:
    """What a user should know about how the server was found and where it listens."""
    notes = []
    if running.found_via == "port":
        notes.append("found by its port: started by hand or by another tool")
    elif running.found_via == "process scan":
        notes.append(
            f"found by scanning processes: it serves {town.data_dir} but no pid file named it "
            "(started by hand or by another tool)"
        )
    if not running.listening:
        notes.append(f"pid {running.pid} listens on no port yet (recorded at its start)")
    elif running.port != settings.port:
        holders = [h for h in procs.port_holders(settings.host, settings.port) if h.pid != running.pid]
        if holders:
            notes.append(
                f"it listens on port {running.port}, not the configured port {settings.port}, which "
                f"{', '.join(h.describe() for h in holders)} holds; free that port (or set dolt.port to "
                f"{running.port}) before gt-dolt restart"
            )
        else:
            notes.append(
                f"it listens on port {running.port}, not the town's port {settings.port}; gt-dolt restart moves it "
                "there (and records it in .dolt-data/config.yaml, where gt reads it)"
            )
    return notes


class Record(NamedTuple):
    """What the run files say about a server we started or proved ours."""

    pid: int
    create_time: float | None
    host: str
    port: int
    databases: tuple[str, ...] = ()
    started_at: str | None = None
    answered_at: str | None = None
    disk_bytes: int | None = None


def state_of(town: Town, record: Record) -> State:
    return State(
        running=True,
        pid=record.pid,
        create_time=record.create_time,
        host=record.host,
        port=record.port,
        started_at=record.started_at or iso_time(record.create_time),
        answered_at=record.answered_at,
        data_dir=str(town.data_dir),
        databases=record.databases,
        log_file=str(town.log_file),
        managed_by="gastown-tasks",
        disk_bytes=record.disk_bytes,
    )


def record_running(town: Town, settings: DoltSettings, running: Running, databases: list[str] | None) -> None:
    """Write the pid and state files for a server proven to be this town's (one started by hand,
    or one whose files were lost), so `gt` and later commands find it the ordinary way.
    """
    created = running.create_time()
    write_pid_file(town, running.pid)
    record = Record(
        pid=running.pid,
        create_time=created,
        host=settings.host,
        port=running.port,
        databases=tuple(databases or ()),
        answered_at=iso_time() if databases is not None else None,
    )
    write_state(town, state_of(town, record))


def mark_stopped(town: Town, **changes: object) -> None:
    """Say in the state file that the server is not running, keeping its history."""
    state = read_state(town)
    if state.problem is None and (state.to_json() or changes):
        write_state(town, state.replace(running=False, stopped_at=iso_time(), **changes))
