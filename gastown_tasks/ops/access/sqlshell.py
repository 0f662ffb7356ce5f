"""`dolt sql` for people: the real Dolt client against the server, or embedded when it is down.

Both modes start in the same database: --rig, else the town's `hq`, else the first rig by name;
the choice is said in one line on stderr.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import NamedTuple

from ..build.binary import dolt_env, find_dolt
from ..errors import NoRigs, Remedy, RigError, SqlFailure, UnsafeFile
from ..files import privilege
from ..files.datadir import Rig, scan_data_dir, validate_rig_name
from ..host import procs
from ..server.discovery import find_running
from ..settings import DoltSettings, settings_from_mapping
from ..sql import sqlclient
from ..town import Town

DEFAULT_RIG = "hq"


class SqlCommand(NamedTuple):
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    note: str  # one line for the user: which rig, which engine
    server: DoltSettings | None = None  # the server the client talks to: reached first, watched while it runs


def default_rig(rigs: list[Rig]) -> Rig:
    return next((rig for rig in rigs if rig.name == DEFAULT_RIG), rigs[0])


def _client(dolt: str, settings: DoltSettings, port: int, rig: str, tail: list[str]) -> list[str]:
    # Dolt's client joins host and port as they are: an IPv6 host needs its brackets.
    return [
        dolt,
        "--host",
        settings.url_host,
        "--port",
        str(port),
        "--user",
        settings.user,
        "--no-tls",
        "--use-db",
        rig,
        "sql",
        *tail,
    ]


def remote_sql_command(settings: DoltSettings, rig: str | None, query: str | None) -> SqlCommand:
    from .remote import databases

    dolt = str(find_dolt(settings.binary))
    served = databases(settings)
    if rig is not None:
        validate_rig_name(rig)
    chosen = rig or (DEFAULT_RIG if DEFAULT_RIG in served else (served[0] if served else None))
    if chosen is None:
        raise NoRigs(f"the remote server at {settings.address} serves no database; {Remedy.INIT_RIG}")
    how = "" if rig is not None else " (the default; --rig NAME to choose)"
    env = dolt_env({"DOLT_CLI_PASSWORD": settings.password})
    tail = ["-q", query] if query is not None else []
    return SqlCommand(
        _client(dolt, settings, settings.port, chosen, tail),
        Path.cwd(),
        env,
        f"sql: rig {chosen}{how}, on the remote server at {settings.address}",
        settings,
    )


def sql_command(town: Town, settings: DoltSettings, rig: str | None = None, query: str | None = None) -> SqlCommand:
    """The argv to run: the query travels as one argument, the password in the environment."""
    dolt = str(find_dolt(settings.binary))
    found = scan_data_dir(town)
    rigs = list(found.rigs)
    if rig is not None:
        validate_rig_name(rig)
    chosen = next((r for r in rigs if r.name == rig), None) if rig is not None else None
    refused = found.refused(rig) if chosen is None and (rig is not None or not rigs) else None
    if refused is not None:  # on disk, but not opened by anything of ours: say why
        raise UnsafeFile(refused)
    if rig is None and not rigs:
        raise NoRigs.in_town(town.data_dir)
    if rig is not None and chosen is None:
        raise RigError(f"no rig {rig} in {town.data_dir}; create it: gt-dolt init-rig {rig}")
    chosen = chosen or default_rig(rigs)
    how = "" if rig is not None else " (the default; --rig NAME to choose)"
    tail = ["-q", query] if query is not None else []
    running = find_running(town, settings)[0]
    if running is not None:
        argv = _client(dolt, settings, running.port, chosen.name, tail)
        env = dolt_env({"DOLT_CLI_PASSWORD": settings.password})
        return SqlCommand(
            argv,
            town.data_dir,
            env,
            f"sql: rig {chosen.name}{how}, through the server on port {running.port}",
            settings.with_overrides(port=running.port),
        )
    privilege.check_town(town)  # Dolt's embedded engine opens the rig by path, as us
    privilege.check_databases([chosen.path])
    note = f"sql: rig {chosen.name}{how}; the server is not running, so Dolt's embedded engine opens {chosen.path}"
    return SqlCommand([dolt, "sql", *tail], chosen.path, dolt_env(), note)


def run_sql(command: SqlCommand) -> int:
    """Run it on this terminal (Dolt gets the tty itself) or these pipes; return its exit code.

    Ctrl-C belongs to the Dolt shell while it runs, as with any interactive child.  Every run ends:
    the server is reached first (a frozen one is one message, not a hang); a query or piped input
    (no person at a prompt) is bounded by LONG_CALL and ended when the server stops answering.
    """
    server = command.server
    if server is not None:
        sqlclient.call(server, lambda conn: None, what="reach the server for the SQL shell")
    batch = "-q" in command.argv or not _is_terminal(sys.stdin)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, lambda signum, frame: None) if in_main else None
    try:
        child = subprocess.Popen(command.argv, cwd=command.cwd, env=command.env)
        with sqlclient.watched(
            server or settings_from_mapping({}), lambda: procs.end_child(child), server is not None and batch
        ) as fell_silent:
            try:
                code = child.wait(timeout=sqlclient.LONG_CALL if batch else None)
            except subprocess.TimeoutExpired:
                procs.end_child(child)
                raise SqlFailure(
                    f"the SQL ran for more than {sqlclient.LONG_CALL / 3600:g} hours and was stopped", kind="timeout"
                ) from None
        if server is not None and fell_silent():
            raise sqlclient.silent(server, "finish the SQL")
        return code
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)


def _is_terminal(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):
        return False
