"""What a rig database holds beyond its start, read on disk by the Dolt CLI (the server stopped).

`cleanup` removes an orphan only when it is as `dolt init` left it; `rollback` refuses when a rig
has moved on since the migration.  Both ask the same question of Dolt, the way Dolt counts it:
every commit of every branch, each branch's head, and the working set's uncommitted changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from ..settings import DoltSettings
from ..sql import sqlclient
from .dbfiles import sql_rows

QUERY = (
    "SELECT 'commit' AS kind, COUNT(*) AS value FROM dolt_commits "
    "UNION ALL SELECT 'change', COUNT(*) FROM dolt_status "
    "UNION ALL SELECT 'tag', COUNT(*) FROM dolt_tags "
    "UNION ALL SELECT CONCAT('branch:', name), hash FROM dolt_branches"
)


class DatabaseState(NamedTuple):
    commits: int  # across every branch; `dolt init` makes one
    changes: int  # uncommitted changes in the working set of the checked-out branch
    tags: int
    heads: dict[str, str]  # branch -> head commit

    @property
    def pristine(self) -> bool:
        """As `dolt init` (or CREATE DATABASE) left it: one commit, one branch, nothing else."""
        return self.commits <= 1 and self.changes == 0 and self.tags == 0 and len(self.heads) <= 1


def read_state(dolt: Path, database: Path, env: dict[str, str]) -> DatabaseState:
    """`env` from dbfiles.counting_env: Dolt must not write into what it reads."""
    return _state(sql_rows(dolt, database, QUERY, env))


def read_state_served(settings: DoltSettings, name: str) -> DatabaseState:
    """The same, asked of the running server (which holds the database's files)."""

    def work(conn: Any) -> list[dict[str, object]]:
        with conn.cursor() as cur:
            cur.execute(QUERY)
            return [{"kind": kind, "value": value} for kind, value in cur.fetchall()]

    return _state(sqlclient.call(settings, work, what=f"read rig {name}", database=name, timeout=5.0))


def _state(rows: list[dict[str, object]]) -> DatabaseState:
    commits = changes = tags = 0
    heads: dict[str, str] = {}
    for row in rows:
        kind, value = str(row.get("kind")), str(row.get("value"))
        if kind == "commit":
            commits = int(value)
        elif kind == "change":
            changes = int(value)
        elif kind == "tag":
            tags = int(value)
        elif kind.startswith("branch:"):
            heads[kind[len("branch:") :]] = value
    return DatabaseState(commits, changes, tags, heads)


def moved_on(before: dict[str, str], now: DatabaseState) -> str | None:
    """How a database differs from the branch heads recorded earlier, or None when it does not."""
    if now.changes:
        return f"{now.changes} uncommitted change(s)"
    added = sorted(set(now.heads) - set(before))
    moved = sorted(name for name in before if name in now.heads and now.heads[name] != before[name])
    gone = sorted(set(before) - set(now.heads))
    parts = [f"new commits on {', '.join(moved)}"] if moved else []
    parts += [f"new branch(es) {', '.join(added)}"] if added else []
    parts += [f"branch(es) {', '.join(gone)} removed"] if gone else []
    return "; ".join(parts) or None
