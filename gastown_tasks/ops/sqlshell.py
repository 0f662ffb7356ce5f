"""`dolt sql` for people: the real Dolt client against the server, or embedded when it is down."""

from __future__ import annotations

import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from .binary import dolt_env, find_dolt
from .errors import NoRigs, RigError
from .rigs import rigs_on_disk, validate_rig_name
from .server import find_running
from .settings import DoltSettings
from .town import Town


@dataclass(frozen=True)
class SqlCommand:
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    note: str | None  # one line for the user, e.g. that the embedded engine is used


def sql_command(
    town: Town, settings: DoltSettings, rig: str | None = None, query: str | None = None
) -> SqlCommand:
    """The argv to run: the query travels as one argument, the password in the environment."""
    dolt = str(find_dolt(settings.binary))
    rigs = rigs_on_disk(town)
    if rig is not None:
        validate_rig_name(rig)
    running = find_running(town, settings)
    tail = ["-q", query] if query is not None else []
    if running is not None:
        argv = [
            dolt,
            "--host",
            settings.host,
            "--port",
            str(running.port),
            "--user",
            settings.user,
            "--no-tls",
        ]
        if rig is not None:
            argv += ["--use-db", rig]
        env = dolt_env({"DOLT_CLI_PASSWORD": settings.password})
        return SqlCommand([*argv, "sql", *tail], town.data_dir, env, None)
    if not rigs:
        raise NoRigs(
            f"the server is not running and there is no rig database in {town.data_dir}; "
            "create one: gt-dolt init-rig <name>"
        )
    chosen = rigs[0] if rig is None else next((r for r in rigs if r.name == rig), None)
    if chosen is None:
        raise RigError(f"no rig {rig} in {town.data_dir}; create it: gt-dolt init-rig {rig}")
    note = f"server not running: embedded dolt sql in rig {chosen.name} ({chosen.path})"
    return SqlCommand([dolt, "sql", *tail], chosen.path, dolt_env(), note)


def run_sql(command: SqlCommand) -> int:
    """Run it on this terminal (Dolt gets the tty itself) or these pipes; return its exit code.

    Ctrl-C belongs to the Dolt shell while it runs, as with any interactive child.
    """
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, lambda signum, frame: None) if in_main else None
    try:
        return subprocess.run(command.argv, cwd=command.cwd, env=command.env).returncode
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)
