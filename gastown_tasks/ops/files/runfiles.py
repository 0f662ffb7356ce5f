"""The run files in <town>/daemon/: the pid file and the state file, as typed values.

The bottom layer: plain values in, plain values out.  Both files are written atomically (Gas
Town's `gt` reads them too), never through a link, and parsed once into `PidFile` and `State`;
whatever a file holds, reading it never raises (its `problem` says what is wrong).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, NamedTuple

from ..errors import FileFailure, UnsafeFile, UnsafeFolder
from ..settings import parse_port
from ..town import Town
from . import safefs

MAX_PID = 2**22  # Linux's pid_max ceiling; anything larger cannot be a process
PID_TEXT = re.compile(r"[0-9]{1,12}", re.ASCII)
PID_FILE_LIMIT = 4096
STATE_FILE_LIMIT = 1024 * 1024
RUN_FILE_MODE = 0o600


def iso_time(timestamp: float | None = None) -> str:
    """A UTC time as the state file records it (RFC 3339, which `gt` parses); now by default."""
    moment = datetime.now(UTC) if timestamp is None else datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="seconds")


def parse_pid(value: Any) -> int | None:
    """A pid from any source, or None: a bool, text, zero, negative or huge value is no pid."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = int(value) if PID_TEXT.fullmatch(value) else None
    return value if isinstance(value, int) and 0 < value <= MAX_PID else None


class PidFile(NamedTuple):
    """What a pid file says: a usable pid, or why there is none."""

    exists: bool
    pid: int | None = None
    problem: str | None = None
    unsafe: bool = False  # planted (a link, FIFO, folder, another's file): never written through


def parse_pid_file(raw: bytes, where: object) -> PidFile:
    """The first line is the pid; Gas Town's daemon writes "PID\\nNONCE"."""
    lines = [line.strip() for line in raw.decode("utf-8", errors="replace").splitlines() if line.strip()]
    if not lines:
        return PidFile(exists=True, problem=f"{where} is empty")
    first = lines[0]
    pid = parse_pid(first)
    if pid is None:
        shown = first[:40]
        if PID_TEXT.fullmatch(first) or first.isascii() and first.lstrip("-").isdigit():
            return PidFile(exists=True, problem=f"{where} holds an impossible pid ({shown})")
        return PidFile(exists=True, problem=f"{where} does not hold a pid ({shown!r})")
    return PidFile(exists=True, pid=pid)


def read_pid_file(town: Town) -> PidFile:
    try:
        raw = safefs.read_bytes(town.pid_file, PID_FILE_LIMIT, root=town.root)
    except UnsafeFolder as exc:
        return PidFile(exists=False, problem=str(exc), unsafe=True)
    except UnsafeFile as exc:
        return PidFile(exists=True, problem=str(exc), unsafe=True)
    except FileFailure as exc:
        return PidFile(exists=True, problem=str(exc))
    if raw is None:
        return PidFile(exists=False)
    return parse_pid_file(raw, town.pid_file)


def write_pid_file(town: Town, pid: int) -> None:
    safefs.write_atomic(town.pid_file, f"{pid}\n".encode(), mode=RUN_FILE_MODE, root=town.root)


def remove_run_file(town: Town, path: Any) -> bool:
    return safefs.remove(path, root=town.root)


class State(NamedTuple):
    """daemon/dolt-state.json: what the last command of either tool recorded about the server."""

    running: bool = False
    pid: int | None = None
    create_time: float | None = None
    host: str | None = None
    port: int | None = None
    started_at: str | None = None
    answered_at: str | None = None  # when this process answered SQL on `port` (absent while it starts)
    stopped_at: str | None = None
    data_dir: str | None = None
    databases: tuple[str, ...] = ()
    log_file: str | None = None
    last_error: str | None = None
    managed_by: str | None = None
    disk_bytes: int | None = None  # the rigs' size when it started (doctor warns on growth)
    extra: Mapping[str, Any] = MappingProxyType({})  # keys another tool wrote: kept on rewrite
    problem: str | None = None  # why the file could not be used; the rest is then empty

    def claims(self, pid: int) -> bool:
        """The state says this pid is the running server."""
        return self.running and self.pid == pid

    def answered(self, pid: int) -> bool:
        """The state says this pid is the running server and answered SQL on the recorded port."""
        return self.claims(pid) and self.port is not None and self.answered_at is not None

    def created(self, pid: int) -> float | None:
        """The create time recorded for `pid`, if the state records that very process."""
        return self.create_time if self.pid == pid else None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(self.extra)
        for name in self._fields:
            if name in ("extra", "problem"):
                continue
            value = getattr(self, name)
            if value is None or value == ():
                continue
            data[name] = list(value) if isinstance(value, tuple) else value
        return data

    def replace(self, **changes: Any) -> State:
        return self._replace(**changes)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and len(value) <= 4096 else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def parse_state(raw: bytes, where: object) -> State:
    """Each field is used only when it has the right type; the rest of the object is kept."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return State(problem=f"{where} is not UTF-8 text; treating the state as unknown")
    except (ValueError, RecursionError):
        return State(problem=f"{where} is not valid JSON; treating the state as unknown")
    if not isinstance(data, dict):
        return State(problem=f"{where} does not hold a JSON object; treating the state as unknown")
    names = set(State._fields) - {"extra", "problem"}
    databases = data.get("databases")
    return State(
        running=data.get("running") is True,
        pid=parse_pid(data.get("pid")) if not isinstance(data.get("pid"), str) else None,
        create_time=_number(data.get("create_time")),
        host=_text(data.get("host")),
        port=parse_port(data["port"]) if isinstance(data.get("port"), int) else None,
        started_at=_text(data.get("started_at")),
        answered_at=_text(data.get("answered_at")),
        stopped_at=_text(data.get("stopped_at")),
        data_dir=_text(data.get("data_dir")),
        databases=tuple(d for d in databases if isinstance(d, str)) if isinstance(databases, list) else (),
        log_file=_text(data.get("log_file")),
        last_error=_text(data.get("last_error")),
        managed_by=_text(data.get("managed_by")),
        disk_bytes=int(data["disk_bytes"])
        if isinstance(data.get("disk_bytes"), int)
        and not isinstance(data.get("disk_bytes"), bool)
        and data["disk_bytes"] >= 0
        else None,
        extra={k: v for k, v in data.items() if k not in names},
    )


def read_state(town: Town) -> State:
    try:
        raw = safefs.read_bytes(town.state_file, STATE_FILE_LIMIT, root=town.root)
    except UnsafeFolder as exc:
        return State(problem=str(exc))
    except (UnsafeFile, FileFailure) as exc:
        return State(problem=f"{exc}; treating the state as unknown")
    if raw is None:
        return State()
    return parse_state(raw, town.state_file)


def write_state(town: Town, state: State) -> None:
    """Keys another tool wrote are kept, unless they would make the file larger than we read."""
    text = json.dumps(state.to_json(), indent=2, sort_keys=True) + "\n"
    if len(text) > STATE_FILE_LIMIT // 2:
        text = json.dumps(state.replace(extra={}).to_json(), indent=2, sort_keys=True) + "\n"
    safefs.write_atomic(town.state_file, text.encode(), mode=RUN_FILE_MODE, root=town.root)


def ensure_daemon_dir(town: Town) -> None:
    """daemon/ is a real folder of the town (created 0755 when missing) that we can write in.

    A write probe rather than a permission check: root ignores permissions but not a read-only
    mount, and a file in daemon/'s place must be named as such.
    """
    with safefs.open_dir(town.daemon_dir, root=town.root, create=True) as dfd:
        probe = f".write-probe.{os.getpid()}.{time.monotonic_ns()}"
        try:
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | safefs.FILE_FLAGS, 0o600, dir_fd=dfd))
            os.unlink(probe, dir_fd=dfd)
        except OSError as exc:
            raise safefs.failure(exc, town.daemon_dir, "write in") from None
