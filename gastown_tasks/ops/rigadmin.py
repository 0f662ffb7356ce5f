"""Creating and listing rig databases, through the server when it runs, on disk when it does not."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import sqlclient
from .binary import dolt_global_config, find_dolt, run_dolt
from .errors import RigError
from .locking import town_lock
from .rigs import rigs_on_disk, validate_rig_name
from .server import LOCK_SLACK, find_running
from .settings import DoltSettings
from .town import Town

CATALOG_WAIT = 30.0  # seconds for a CREATE DATABASE to show in SHOW DATABASES


@dataclass(frozen=True)
class RigEntry:
    name: str
    path: Path
    served: bool | None  # None when the server is not running


def list_rigs(town: Town, settings: DoltSettings) -> list[RigEntry]:
    rigs = rigs_on_disk(town)
    running = find_running(town, settings) if rigs else None
    served: list[str] | None = None
    if running is not None:
        served = sqlclient.served_databases(settings.with_overrides(port=running.port))
    have = {name.lower() for name in served} if served is not None else None
    return [RigEntry(rig.name, rig.path, None if have is None else rig.name.lower() in have) for rig in rigs]


def _git_config(key: str) -> str:
    git = shutil.which("git")
    if git is None:
        return ""
    done = subprocess.run(
        [git, "config", "--get", key], capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    return done.stdout.strip() if done.returncode == 0 else ""


def author_identity(dolt: Path) -> tuple[str, str]:
    """Dolt's global identity, else git's; `dolt init` refuses to run without one."""
    name = dolt_global_config(dolt, "user.name") or _git_config("user.name")
    email = dolt_global_config(dolt, "user.email") or _git_config("user.email")
    if not name or not email:
        raise RigError(
            "dolt init needs an author identity and neither Dolt nor git has one; run:\n"
            '  dolt config --global --add user.name "Your Name"\n'
            '  dolt config --global --add user.email "you@example.com"'
        )
    return name, email


def _init_on_disk(town: Town, name: str, dolt: Path, identity: tuple[str, str] | None) -> None:
    """`dolt init` in a hidden folder beside the target, renamed into place only on success."""
    author, email = identity or author_identity(dolt)
    town.data_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".init-{name}-", dir=town.data_dir))
    try:
        done = run_dolt(dolt, "init", "--name", author, "--email", email, cwd=staging)
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip()
            raise RigError(f"dolt init failed for rig {name} (exit {done.returncode}): {detail}")
        staging.rename(town.rig_dir(name))
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def _create_through_server(settings: DoltSettings, port: int, name: str) -> None:
    """CREATE DATABASE on the running server, then wait until it lists the new rig."""
    import pymysql

    target = settings.with_overrides(port=port)
    conn = sqlclient.connect(target)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")  # name validated: [A-Za-z0-9_-] only
        deadline = time.monotonic() + CATALOG_WAIT
        delay = 0.002
        while sqlclient.missing([name], sqlclient.show_databases(conn)):
            if time.monotonic() > deadline:
                raise RigError(f"the server accepted CREATE DATABASE {name} but does not list it")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
    except pymysql.err.MySQLError as exc:
        raise RigError(f"the server refused to create rig {name}: {exc.args[-1]}") from None
    finally:
        conn.close()


def init_rig(
    town: Town, settings: DoltSettings, name: str, identity: tuple[str, str] | None = None
) -> tuple[Path, bool]:
    """Create rig `name`; returns its path and whether the running server serves it already.

    `identity` (name, email) is the author of the first commit when the rig is made on disk;
    by default Dolt's global identity, else git's.
    """
    validate_rig_name(name)
    target = town.rig_dir(name)
    dolt = find_dolt(settings.binary)
    with town_lock(town, wait=settings.start_timeout + settings.stop_timeout + LOCK_SLACK):
        taken = next((rig for rig in rigs_on_disk(town) if rig.name.lower() == name.lower()), None)
        if taken is not None or target.exists():
            where = taken.path if taken is not None else target
            raise RigError(f"rig {name} already exists at {where}")
        running = find_running(town, settings)
        if running is not None:
            _create_through_server(settings, running.port, name)
            return target, True
        _init_on_disk(town, name, dolt, identity)
        return target, False
