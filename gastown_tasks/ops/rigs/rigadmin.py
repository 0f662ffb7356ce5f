"""Creating and listing rig databases, through the server when it runs, on disk when it does not."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, NamedTuple

from ..beads import beads
from ..build.binary import dolt_command_hint, dolt_global_config, find_dolt, run_dolt
from ..errors import RigError
from ..files import safefs, staging
from ..files.datadir import clashing, scan_data_dir, validate_rig_name
from ..files.locking import town_lock
from ..polling import poll_until
from ..server.discovery import find_running
from ..settings import DoltSettings
from ..sql import sqlclient
from ..town import Town

CATALOG_WAIT = 30.0  # seconds for a CREATE DATABASE to show in SHOW DATABASES


def _git_config(key: str) -> str:
    git = shutil.which("git")
    if git is None:
        return ""
    done = subprocess.run([git, "config", "--get", key], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return done.stdout.strip() if done.returncode == 0 else ""


def author_identity(dolt: Path) -> tuple[str, str]:
    """Dolt's global identity, else git's; `dolt init` refuses to run without one."""
    name = dolt_global_config(dolt, "user.name") or _git_config("user.name")
    email = dolt_global_config(dolt, "user.email") or _git_config("user.email")
    if not name or not email:
        run = dolt_command_hint(dolt)
        raise RigError(
            "dolt init needs an author identity and neither Dolt nor git has one; run:\n"
            f'  {run} config --global --add user.name "Your Name"\n'
            f'  {run} config --global --add user.email "you@example.com"'
        )
    return name, email


def init_on_disk(town: Town, name: str, dolt: Path, identity: tuple[str, str] | None) -> None:
    """`dolt init` in the staging area, renamed into place only on success (ops/files/staging.py)."""
    author, email = identity or author_identity(dolt)
    safefs.ensure_dir(town.data_dir, root=town.root)
    with staging.staged(town.data_dir, name, root=town.root) as stage:
        try:
            stage.path.mkdir(mode=0o755)
        except OSError as exc:
            raise safefs.failure(exc, town.data_dir, "create a rig in") from None
        done = run_dolt(dolt, "init", "--name", author, "--email", email, cwd=stage.path)
        if done.returncode != 0:
            detail = " ".join((done.stderr or done.stdout).split())[-1000:]
            raise RigError(f"dolt init failed for rig {name} (exit {done.returncode}): {detail}{_full_disk(town)}")
        try:
            stage.commit()
        except FileExistsError:
            raise RigError(f"rig {name} appeared at {town.rig_dir(name)} meanwhile; nothing was changed") from None
        except OSError as exc:
            raise safefs.failure(exc, town.rig_dir(name), "create") from None


def _full_disk(town: Town) -> str:
    try:
        full = os.statvfs(town.data_dir).f_bavail == 0
    except OSError:
        return ""
    return f"; the file system holding {town.data_dir} is full: free some space, then retry" if full else ""


def create_through_server(settings: DoltSettings, name: str) -> None:
    """CREATE DATABASE on the running server, then wait until it lists the new rig."""

    def work(conn: Any) -> None:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")  # name validated: [A-Za-z0-9_-] only
        if poll_until(lambda: not sqlclient.missing([name], sqlclient.show_databases(conn)), CATALOG_WAIT) is None:
            raise RigError(f"the server accepted CREATE DATABASE {name} but does not list it")

    sqlclient.call(settings, work, what=f"create rig {name} through the server")


class NewRig(NamedTuple):
    path: Path
    served: bool  # the running server serves it already (else: from its next start)
    notes: list[str]
    created: bool = True  # False: the rig existed, and only its beads metadata was written


def init_rig(town: Town, settings: DoltSettings, name: str, identity: tuple[str, str] | None = None) -> NewRig:
    """Create rig `name` and point its beads at it, as gt's init-rig does (metadata written where
    there is none); the town's other beads are pointed at the server too.

    `identity` (name, email) is the author of the first commit when the rig is made on disk;
    by default Dolt's global identity, else git's.  A rig that exists but that no beads metadata
    names yet (an init-rig cut short before its last step) gets its metadata, and nothing else.
    """
    validate_rig_name(name)
    target = town.rig_dir(name)
    dolt = find_dolt(settings.binary)
    with town_lock(town, wait=settings.lock_wait):
        staging.sweep(town.data_dir, root=town.root)
        found = scan_data_dir(town)
        taken = clashing(name, found.names + [path.name for path in found.linked])
        running = find_running(town, settings)[0]
        port = running.port if running is not None else settings.port
        if taken == name and name in found.names and beads.read_beads(town, name).metadata is None:
            notes = beads.ensure_rig_metadata(town, settings, port, name, found.names)
            return NewRig(target, running is not None, notes, created=False)
        if taken is not None or os.path.lexists(target):
            where = town.rig_dir(taken or name)
            what = "already exists" if taken in (None, name) else f"clashes with rig {taken} (names ignore case)"
            raise RigError(f"rig {name} {what} at {where}")
        beads.refuse_if_held(town, name)
        if running is not None:
            create_through_server(settings.with_overrides(port=running.port), name)
        else:
            init_on_disk(town, name, dolt, identity)
        notes = beads.ensure_rig_metadata(town, settings, port, name, scan_data_dir(town).names)
        return NewRig(target, running is not None, notes)
