"""Waiting for a started server to be ready, and explaining from its log when it is not.

Ready means: answers SQL over the MySQL protocol and lists every rig on disk.  Polling is
milliseconds apart because a refused connect costs well under one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
from collections.abc import Callable

from . import sqlclient
from .errors import StartFailed
from .logfile import last_lines
from .settings import DoltSettings
from .town import Town

LOG_TAIL_LINES = 20


def log_tail(town: Town, offset: int) -> str:
    lines = last_lines(town.log_file, LOG_TAIL_LINES, start=offset)
    if not lines:
        return f"(nothing in {town.log_file})"
    return f"last lines of {town.log_file}:\n" + "\n".join(f"  {line}" for line in lines)


_LOG_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def _log_fields(line: str) -> dict[str, str]:
    """key=value pairs of one logrus line (Dolt's log format), quoted values unquoted."""
    fields = {}
    for key, value in _LOG_FIELD.findall(line):
        if value.startswith('"'):
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        fields[key] = value
    return fields


def skipped_rigs(town: Town, offset: int, missing: list[str]) -> str | None:
    """Why Dolt gave up on missing rigs, from its log since `offset`; None when it did not say."""
    wanted = {os.path.realpath(town.rig_dir(name)): name for name in missing}
    found: dict[str, str] = {}
    try:
        with open(town.log_file, "rb") as handle:
            handle.seek(offset)
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if "skipping" not in line or "path=" not in line:
            continue
        fields = _log_fields(line)
        name = wanted.get(os.path.realpath(fields.get("path", "")))
        if name is not None:
            found[name] = fields.get("error") or fields.get("msg") or line.strip()
    if not found:
        return None
    rigs = "; ".join(f"rig {name} at {town.rig_dir(name)} ({why})" for name, why in sorted(found.items()))
    return (
        f"dolt sql-server skipped {rigs}: Dolt cannot open that database, so waiting longer would not "
        f"help. Repair it (or move it out of {town.data_dir}), then start again"
    )


def wait_ready(
    child: subprocess.Popen[bytes],
    settings: DoltSettings,
    rigs: list[str],
    timeout: float,
    skipped: Callable[[list[str]], str | None] | None = None,
) -> list[str]:
    """Poll (milliseconds apart) until the server answers SQL and lists every rig.

    Raises StartFailed("exited …"), StartFailed("skipped …") as soon as the log shows that Dolt
    gave up on a rig (waiting longer cannot help), or StartFailed("timeout …"); the caller
    cleans up.
    """
    import pymysql

    deadline = time.monotonic() + timeout
    delay = 0.001
    conn = None
    served: list[str] = []
    answered = False
    try:
        while True:
            code = child.poll()
            if code is not None:
                raise StartFailed(
                    f"dolt sql-server exited with code {code} before it was ready; "
                    "the log lines below say why: fix that, then start again"
                )
            remaining = deadline - time.monotonic()
            if conn is None and remaining > 0:
                try:
                    conn = sqlclient.connect(settings, timeout=min(2.0, max(remaining, 0.05)))
                except pymysql.err.MySQLError:
                    conn = None
            if conn is not None:
                try:
                    served = sqlclient.show_databases(conn)
                    answered = True
                    missing = sqlclient.missing(rigs, served)
                    if not missing:
                        return served
                    given_up = skipped(missing) if skipped is not None else None
                    if given_up:
                        raise StartFailed(given_up)
                except pymysql.err.MySQLError:
                    conn.close()
                    conn = None
            if time.monotonic() >= deadline:
                if answered:
                    waited = (
                        f"it answered SQL on {settings.host}:{settings.port} but did not list "
                        f"{', '.join(sqlclient.missing(rigs, served))}"
                    )
                else:
                    waited = f"it never answered SQL on {settings.host}:{settings.port}"
                raise StartFailed(
                    f"dolt sql-server (pid {child.pid}) was not ready within {timeout:g}s: {waited}; "
                    "raise dolt.start_timeout (or --timeout) if the databases are large"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.005)  # a refused connect costs well under 1 ms
    finally:
        if conn is not None:
            conn.close()
