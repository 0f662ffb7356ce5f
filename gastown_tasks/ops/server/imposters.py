"""Imposters: a Dolt server on this town's port that serves a data dir belonging to no town.

Upstream's `gt dolt kill-imposters` (and its `restart`) kills the first process lsof finds on the
port when its paths do not match the town's.  Here a process is an imposter only with every
proof, checked again on the very process just before it is signalled: it is a `dolt sql-server`,
it runs as us (or we are root), it listens on this town's port, and the folder it really serves
(ops/procs.py: what it holds, not what its arguments say) lies outside this town and inside no
other town (a folder with `mayor/` on the way up: a sibling's, a parent's or a nested town's
server is that town's, two towns on one port is a port to move, never a process to kill).  A
server serving a folder inside this town is a rogue (`gt-dolt stop-rogue`); anything else on the
port is named and left alone.  Only `gt-dolt kill-imposters` stops one; `start` names it and refuses.
"""

from __future__ import annotations

import os
import stat
from typing import NamedTuple

import psutil

from ..errors import StopFailed
from ..files.locking import town_lock
from ..host import procs
from ..settings import DoltSettings
from ..town import Town
from .discovery import dolt_info_pid
from .rogues import nested_town


class Listener(NamedTuple):
    pid: int
    what: str  # "dolt sql-server serving /x, run by u"
    imposter: bool
    why: str  # for one left alone: why; for an imposter: the proof in words

    def to_json(self) -> dict[str, object]:
        return self._asdict()


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def town_holding(folder: str) -> str | None:
    """The town `folder` lies in: the nearest folder on the way up with a real `mayor/` folder in it."""
    current = folder
    while True:
        try:
            if stat.S_ISDIR(os.lstat(os.path.join(current, "mayor")).st_mode):
                return current
        except OSError:
            pass
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def judge(proc: psutil.Process, town: Town, port: int) -> Listener | None:
    """What holds the port: None for this town's own server, else an imposter or why it is not one."""
    pid = proc.pid
    if procs.looks_like_town_server(proc, town.data_dir, town.config_file, dolt_info_pid(town)):
        return None
    what = procs.describe_pid(pid)
    if not procs.is_dolt_sql_server(proc):
        return Listener(pid, what, False, "not a Dolt server: stop it yourself if it should not hold the port")
    if not (procs.runs_as_us(proc) or os.geteuid() == 0):
        return Listener(pid, what, False, f"run by {procs.owner_name(proc)}, not by you: stop it as that user")
    if port not in procs.listening_ports(proc):
        return Listener(pid, what, False, f"it is not seen listening on port {port}")
    served = procs.served_data_dir(proc)
    if served is None:
        return Listener(pid, what, False, "the folder it serves cannot be seen")
    root = os.path.realpath(town.root)
    if _inside(served, root):
        nested = nested_town(served, root)
        if nested is not None:
            return Listener(pid, what, False, f"it is the server of the town at {nested} (nested in this one)")
        return Listener(
            pid, what, False, f"it serves a folder inside this town: a rogue, stopped by gt-dolt stop-rogue --pid {pid}"
        )
    other = town_holding(served)
    if other is not None:
        return Listener(
            pid,
            what,
            False,
            f"it is the server of the town at {other}: two towns on one port; move one (gt-dolt start --port N)",
        )
    return Listener(pid, what, True, f"a dolt sql-server of {procs.owner_name(proc)} on port {port} serving {served}")


def hint(town: Town, port: int, pids: list[int]) -> str:
    """For `start`'s refusal: which of the port's holders are imposters, and the command that stops them."""
    found = []
    for pid in pids:
        proc = procs.live(pid)
        verdict = judge(proc, town, port) if proc is not None else None
        if verdict is not None and verdict.imposter:
            found.append(str(pid))
    if not found:
        return ""
    return f"; pid {', '.join(found)} is an imposter (a Dolt server of no town): gt-dolt kill-imposters stops it"


class Found(NamedTuple):
    port: int
    imposters: list[Listener]
    left: list[Listener]  # on the port, not imposters: named, never signalled
    stopped: list[Listener]


def kill_imposters(town: Town, settings: DoltSettings, dry_run: bool = False) -> Found:
    """Stop every imposter on the town's port (none with `dry_run`); each proved again on the very
    process just before its signal (psutil refuses a pid that was reused)."""
    port = settings.port
    with town_lock(town, wait=settings.lock_wait):
        seen: list[tuple[psutil.Process, Listener]] = []
        for pid in procs.listeners_where(settings.host, port):
            proc = procs.live(pid)
            verdict = judge(proc, town, port) if proc is not None else None
            if proc is not None and verdict is not None:
                seen.append((proc, verdict))
        imposters = [v for _, v in seen if v.imposter]
        left = [v for _, v in seen if not v.imposter]
        stopped = []
        if not dry_run:
            for proc, verdict in seen:
                if not verdict.imposter:
                    continue
                again = judge(proc, town, port)
                if again is None or not again.imposter:
                    continue  # it changed since: no longer proved, not signalled
                try:
                    procs.terminate(proc, settings.stop_timeout)
                except psutil.AccessDenied:
                    raise StopFailed(
                        f"not allowed to signal pid {proc.pid} ({verdict.what}); stop it as the user that runs it"
                    ) from None
                stopped.append(verdict)
    return Found(port, imposters, left, stopped)
