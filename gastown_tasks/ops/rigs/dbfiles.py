"""What migrate, its backup, rollback and cleanup all measure of a database folder: its files and
sizes, and its rows as Dolt reads them (a `dolt sql` with a root of its own); and bd's own lock on
an embedded database while it moves.  One home, below migrate and migrationbackup alike."""

from __future__ import annotations

import errno
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from ..beads import beadslayout
from ..build.binary import dolt_env, run_dolt
from ..errors import MigrationError
from ..files import safefs
from ..town import Town


class Moving(Protocol):
    """A database being moved (migrate's Move): where it is, and which beads layout holds it."""

    @property
    def source(self) -> Path: ...

    @property
    def layout(self) -> str: ...


def tree_size(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                continue
    return total


def listing(root: Path) -> dict[str, int]:
    """Relative path -> size of every file under root (symlinks as links)."""
    found = {}
    for folder, _, files in os.walk(root):
        for name in files:
            full = os.path.join(folder, name)
            found[os.path.relpath(full, root)] = os.lstat(full).st_size
    return found


COUNT_ROOT = "dolt-count-root"  # in daemon/: the Dolt root of the counting `dolt sql`


def counting_env(town: Town, dolt: Path) -> dict[str, str]:
    """The environment of the counting `dolt sql`: a Dolt root of its own (daemon/dolt-count-root,
    0700, kept) whose config turns off Dolt's statistics database, which Dolt would otherwise write
    into the database it counts.  Dolt writes that config itself."""
    root = town.daemon_dir / COUNT_ROOT
    safefs.ensure_private_dir(root, root=town.root)
    env = dolt_env({"DOLT_ROOT_PATH": str(root)})
    done = run_dolt(dolt, "config", "--global", "--add", "sqlserver.global.dolt_stats_enabled", "0", env=env)
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip()[-300:]
        raise MigrationError(f"Dolt could not be set up to count rows ({said}); nothing was moved")
    return env


def sql_rows(dolt: Path, database: Path, query: str, env: dict[str, str]) -> list[dict[str, object]]:
    done = run_dolt(dolt, "sql", "-r", "json", "-q", query, cwd=database, env=env, timeout=600)
    if done.returncode != 0:
        said = " ".join((done.stderr or done.stdout).split())[-300:]
        raise MigrationError(f"Dolt cannot open {database} ({said}); nothing was moved: check it with: dolt fsck")
    text = done.stdout.strip()
    if not text:
        return []
    try:
        rows = json.loads(text).get("rows", [])
    except (ValueError, AttributeError):
        raise MigrationError(f"Dolt's answer about {database} was not JSON; nothing was moved") from None
    return [row for row in rows if isinstance(row, dict)]


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def table_counts(dolt: Path, database: Path, env: dict[str, str]) -> dict[str, int]:
    """Table -> number of rows, as Dolt reads the database (its working set); `env` from counting_env."""
    tables = [
        str(value)
        for row in sql_rows(dolt, database, "SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'", env)
        for key, value in row.items()
        if key.startswith("Tables_in_")
    ]
    if not tables:
        return {}
    query = " UNION ALL ".join(
        f"SELECT {json.dumps(name)} AS t, COUNT(*) AS n FROM {_quote(name)}" for name in sorted(tables)
    )
    return {str(row.get("t")): int(str(row.get("n"))) for row in sql_rows(dolt, database, query, env)}


@contextmanager
def bd_lock(town: Town, move: Moving) -> Iterator[None]:
    """bd's own flock on embeddeddolt/.lock, held while the embedded database moves: no bd writes to
    it meanwhile, and one that holds it now is waited for by nobody (the move is refused)."""
    if move.layout != "embeddeddolt":
        yield
        return
    lock = move.source.parent / beadslayout.EMBEDDED_LOCK
    with safefs.open_file(lock, os.O_RDWR | os.O_CREAT, root=town.root, mode=0o600) as fd:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise MigrationError(
                    f"bd is using {move.source} (it holds {lock}); nothing was moved: let that bd finish "
                    "(or stop it), then migrate again"
                ) from None
            raise safefs.failure(exc, lock, "lock") from None
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
