"""Rogue Dolt servers: ours, serving a folder inside this town that is not .dolt-data.

A folder of a town nested inside this one (a folder with `mayor/` on the way, such as a clone's
own demo town) is that town's business: its server is never a rogue of ours.

The split brain of Gas Town: a `bd` that could not find the town's server starts its own embedded
one in `<rig>/.beads/dolt` on some port, and writes land where nobody else looks.  Stopping one is
its own explicit command, which proves, just before it signals, that the process is a Dolt server
of ours serving a folder inside this town other than .dolt-data.  It never touches any data.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import psutil

from ..errors import NotOurs, StopFailed
from ..host import procs
from ..town import Town


class Rogue(NamedTuple):
    pid: int
    data_dir: str
    ports: tuple[int, ...]

    def describe(self) -> str:
        where = f"port {', '.join(map(str, self.ports))}" if self.ports else "no port"
        return f"pid {self.pid} serving {self.data_dir} ({where})"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def nested_town(served: str, root: str) -> str | None:
    """The town inside this one that `served` belongs to (a folder with `mayor/` between it and
    `root`, as a clone's own demo town has), or None: that town's server is not our rogue."""
    folder = served
    while _inside(folder, root) and folder != root:
        if os.path.isdir(os.path.join(folder, "mayor")):
            return folder
        folder = os.path.dirname(folder)
    return None


def _as_rogue(proc: psutil.Process, town: Town) -> Rogue | None:
    if not (procs.is_dolt_sql_server(proc) and procs.runs_as_us(proc)):
        return None
    served = procs.served_data_dir(proc)
    root, data = os.path.realpath(town.root), os.path.realpath(town.data_dir)
    if served is None or served == data or not _inside(served, root) or nested_town(served, root):
        return None
    return Rogue(proc.pid, served, tuple(procs.listening_ports(proc)))


def find_rogues(town: Town) -> list[Rogue]:
    found = []
    for proc in procs.dolt_servers():
        rogue = _as_rogue(proc, town)
        if rogue is not None:
            found.append(rogue)
    return sorted(found, key=lambda r: r.pid)


def stop_rogues(town: Town, pid: int | None, timeout: float) -> list[Rogue]:
    """Stop every rogue server of this town (or only `pid`, which must be one); the ones stopped."""
    if pid is not None:
        proc = procs.live(pid)
        rogue = _as_rogue(proc, town) if proc is not None else None
        if proc is None or rogue is None:
            what = procs.describe_pid(pid) if proc is not None else "not running"
            raise NotOurs(
                f"pid {pid} ({what}) is not a Dolt server of yours serving a folder inside {town.root} other "
                "than .dolt-data; nothing was signalled. See: gt-dolt doctor"
            )
        targets = [(proc, rogue)]
    else:
        targets = []
        for candidate in procs.dolt_servers():
            found = _as_rogue(candidate, town)
            if found is not None:
                targets.append((candidate, found))
    stopped = []
    for proc, rogue in targets:
        try:
            procs.terminate(proc, timeout)  # the very Process proved above: a reused pid is refused
        except psutil.AccessDenied:
            raise StopFailed(f"not allowed to signal {rogue.describe()}; stop it as the user that runs it") from None
        stopped.append(rogue)
    return stopped
