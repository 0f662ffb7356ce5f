"""Waiting for a started server to be ready, and explaining from its log when it is not.

Ready means: answers SQL over the MySQL protocol and lists every rig on disk.  Polling is
milliseconds apart because a refused connect costs well under one.  Refused credentials end the
wait at once: waiting longer cannot make a wrong password right.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import PortInUse, StartFailed
from ..files.logfile import last_lines, read_since
from ..polling import poll_until
from ..settings import DoltSettings
from ..sql import sqlclient
from ..town import Town

if TYPE_CHECKING:
    import socket

LOG_TAIL_LINES = 20


def log_tail(town: Town, offset: int) -> str:
    lines = last_lines(town.log_file, LOG_TAIL_LINES, start=offset, root=town.root)
    if not lines:
        return f"(nothing in {town.log_file})"
    return f"last lines of {town.log_file}:\n" + "\n".join(f"  {line}" for line in lines)


_LOG_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def log_fields(line: str) -> dict[str, str]:
    """key=value pairs of one logrus line (Dolt's log format), quoted values unquoted."""
    fields = {}
    for key, value in _LOG_FIELD.findall(line):
        if value.startswith('"'):
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        fields[key] = value
    return fields


def skipped_in_log(text: str, wanted: dict[str, str]) -> dict[str, str]:
    """Rig name -> Dolt's reason, for each `skipping` line about a path in `wanted` (path -> rig)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if "skipping" not in line or "path=" not in line:
            continue
        fields = log_fields(line)
        name = wanted.get(os.path.realpath(fields.get("path", "")))
        if name is not None:
            found[name] = fields.get("error") or fields.get("msg") or line.strip()
    return found


def damaged_rig_hint(town: Town, name: str, dolt: str = "dolt") -> str:
    return f"check it with Dolt's own repair tool: cd {town.rig_dir(name)} && {dolt} fsck"


def skipped_rigs(town: Town, offset: int, missing: list[str], dolt: str = "dolt") -> str | None:
    """Why Dolt gave up on missing rigs, from its log since `offset`; None when it did not say."""
    wanted = {os.path.realpath(town.rig_dir(name)): name for name in missing}
    found = skipped_in_log(read_since(town.log_file, offset, root=town.root), wanted)
    if not found:
        return None
    rigs = "; ".join(f"rig {name} at {town.rig_dir(name)} ({why})" for name, why in sorted(found.items()))
    hints = "; ".join(damaged_rig_hint(town, name, dolt) for name in sorted(found))
    return (
        f"dolt sql-server skipped {rigs}: Dolt cannot open that database, so waiting longer would not "
        f"help. {hints} (or move it out of {town.data_dir}), then start again"
    )


SERVER_ERROR_GRACE = 1.0  # seconds the server may answer logins with an error before a start gives up
SERVER_ERROR_PAUSE = 0.05  # between logins the server answered with an error


READY_LINE = "Server ready. Accepting connections."  # Dolt logs it once its SQL listener is bound
LOGS_READY_LINE = ("trace", "debug", "info")  # the levels at which Dolt writes that line
ANNOUNCE_GRACE = 1.0  # seconds the port may answer before the line is written, then the sockets are asked
ELSEWHERE_EVERY = 0.25  # seconds between looks at the log while the port refuses


def holds_port(
    child: subprocess.Popen[bytes],
    settings: DoltSettings,
    sock: socket.socket,
    said: Callable[[], str],
    answering_for: float,
) -> bool:
    """Whatever accepted our connection must be the server just started, before it is sent our
    login: another user could bind the port between the preflight and Dolt's own bind, ask for the
    password in clear text, and answer like Dolt while Dolt dies on the taken port.

    Dolt's own log (ours alone, 0600) says when its listener is bound; at quieter log levels, or
    when the port has answered for a while without that line, the child's sockets are asked
    instead (a scan of the machine's sockets, ~10 ms).  False closes the socket: not proven yet,
    ask again.
    """
    if READY_LINE in said():
        return True
    if settings.log_level in LOGS_READY_LINE and answering_for < ANNOUNCE_GRACE:
        sock.close()  # bound but not announced yet, or another process's port: the child will say
        return False
    import psutil

    from ..host import procs

    try:
        if settings.port in procs.listening_ports(psutil.Process(child.pid)):
            return True
    except psutil.Error:
        pass  # it exited: the next poll says so, with its log
    sock.close()
    if child.poll() is None:
        holders = [h.describe() for h in procs.port_holders(settings.host, settings.port) if h.pid != child.pid]
        raise PortInUse.held(settings.port, ", ".join(holders) or "a process this user cannot see")
    return False


def refuses_every_login(seen: dict[str, Any], exc: BaseException) -> None:
    """A server that answers every login with an error (a bad setting in dolt.server) is not slow:
    after a second of it, the start ends with the server's own words."""
    now = time.monotonic()
    if seen["erring"] is None:
        seen["erring"] = now
    elif now - seen["erring"] > SERVER_ERROR_GRACE:
        raise StartFailed(
            f"dolt sql-server answers but fails every login: {sqlclient.message_of(exc)}; fix that "
            "(the log lines below say more), then start again"
        )
    time.sleep(SERVER_ERROR_PAUSE)


def wait_ready(
    child: subprocess.Popen[bytes],
    settings: DoltSettings,
    rigs: list[str],
    timeout: float,
    skipped: Callable[[list[str]], str | None] | None = None,
    said: Callable[[], str] = lambda: "",
    elsewhere: Callable[[bool], str | None] | None = None,
) -> list[str]:
    """Poll until the server answers SQL and lists every rig; the served databases.

    Raises StartFailed("exited …"), StartFailed("skipped …") as soon as the log shows that Dolt
    gave up on a rig, StartFailed(`elsewhere(announced)`) when Dolt listens beyond its config or
    says it is ready but nothing answers on the configured port (it read a config not ours),
    AccessDenied at the first refused login, or StartFailed("not ready …") at the deadline; the caller cleans up.
    """
    import pymysql

    seen: dict[str, Any] = {
        "conn": None,
        "served": [],
        "answered": False,
        "ours": False,  # the listener is proven to be the child
        "answering": None,  # when the port first accepted a connection
        "erring": None,  # when the server first answered a login with an error
        "looked": 0.0,  # when the log was last read for the ready line while the port refused
    }

    def misplaced() -> None:
        """Refusing on our port: ask where it listens (at most 4× a second).  Ready by its own log,
        anywhere but our port is wrong; at levels quieter than info Dolt never says it is ready,
        so only a listener beyond its config is."""
        now = time.monotonic()
        if elsewhere is None or now - seen["looked"] < ELSEWHERE_EVERY:
            return
        seen["looked"] = now
        announced = READY_LINE in said()
        if announced or settings.log_level not in LOGS_READY_LINE:
            problem = elsewhere(announced)
            if problem:
                raise StartFailed(problem)

    def drop() -> None:
        if seen["conn"] is not None:
            seen["conn"].close()
            seen["conn"] = None

    def ready() -> tuple[list[str]] | None:
        code = child.poll()
        if code is not None:
            raise StartFailed(
                f"dolt sql-server exited with code {code} before it was ready; "
                "the log lines below say why: fix that, then start again"
            )
        try:
            if seen["conn"] is None:
                wait = min(2.0, max(timeout, 0.05))
                sock = sqlclient.open_socket(settings, timeout=wait)
                if sock is None:
                    misplaced()
                    return None  # not listening yet
                if not seen["ours"]:
                    first = seen["answering"] = seen["answering"] or time.monotonic()
                    if not holds_port(child, settings, sock, said, time.monotonic() - first):
                        return None
                    seen["ours"] = True
                seen["conn"] = sqlclient.connect(settings, timeout=wait, sock=sock)
            served = sqlclient.show_databases(seen["conn"])
        except pymysql.err.MySQLError as exc:
            drop()
            kind = sqlclient.classify(exc)
            if kind == "denied":
                raise sqlclient.denied(settings, exc) from None
            if kind == "error":
                refuses_every_login(seen, exc)
            return None
        seen["served"], seen["answered"], seen["erring"] = served, True, None
        lacking = sqlclient.missing(rigs, served)
        if not lacking:
            return (served,)
        given_up = skipped(lacking) if skipped is not None else None
        if given_up:
            raise StartFailed(given_up)
        return None

    try:
        result = poll_until(ready, timeout, max_delay=0.002)  # as often as the bare-Dolt baseline probes
    finally:
        drop()
    if result is not None:
        return result[0]
    if seen["answered"]:
        waited = (
            f"it answered SQL on {settings.address} but did not list "
            f"{', '.join(sqlclient.missing(rigs, seen['served']))}"
        )
    else:
        waited = f"it never answered SQL on {settings.address}"
    raise StartFailed(
        f"dolt sql-server (pid {child.pid}) was not ready within {timeout:g}s: {waited}; "
        "raise dolt.start_timeout (or --timeout) if the databases are large"
    )
