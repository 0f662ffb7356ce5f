"""daemon/dolt-backups.json: when each rig was last backed up, for `status` and `doctor`.

Its own module so that `status` reads the record without importing the backup machinery.
"""

from __future__ import annotations

import json
import math
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import GastownError
from ..settings import DoltSettings
from ..town import Town
from . import safefs
from .runfiles import iso_time

RECORD_LIMIT = 1024 * 1024


def records_file(town: Town) -> Path:
    return town.daemon_dir / "dolt-backups.json"


def read_records(town: Town) -> dict[str, Any]:
    try:
        raw = safefs.read_bytes(records_file(town), RECORD_LIMIT, root=town.root)
        data = json.loads(raw) if raw else {}
    except (ValueError, RecursionError, GastownError):  # unreadable: as if never backed up (doctor says why)
        return {}
    return data if isinstance(data, dict) else {}


def refuse_planted_record(town: Town) -> None:
    """The record must be a plain file of ours (or missing) before anything is backed up."""
    what = safefs.describe(records_file(town))
    if what is not None:
        raise safefs.unsafe(records_file(town), what)


def record(town: Town, rig: str, url: str, seconds: float) -> None:
    data = read_records(town)
    data[rig] = {"url": url, "at": iso_time(), "seconds": round(seconds, 3)}
    safefs.write_atomic(
        records_file(town), (json.dumps(data, indent=2, sort_keys=True) + "\n").encode(), mode=0o600, root=town.root
    )


def parse_time(value: object) -> datetime | None:
    """A recorded time, or None: text that is no ISO time, or a time in the future (a clock or a
    hand that lied).  A time without a zone is UTC, as we write it."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return moment if moment <= datetime.now(UTC) else None


def ages(town: Town, rigs: list[str]) -> dict[str, float | None]:
    """Seconds since each rig's last recorded backup (None: never, or no usable record)."""
    records = read_records(town)
    now = datetime.now(UTC)
    found: dict[str, float | None] = {}
    for rig in rigs:
        entry = records.get(rig)
        moment = parse_time(entry.get("at")) if isinstance(entry, dict) else None
        found[rig] = (now - moment).total_seconds() if moment is not None else None
    return found


def stale(town: Town, settings: DoltSettings, rigs: list[str]) -> list[str]:
    """Rigs whose last backup is older than dolt.backup_max_age_hours (0: no backups expected).

    A rig never backed up is overdue only once it has existed that long, so a new town or rig is
    not nagged on its first day.
    """
    if not settings.backup_max_age_hours:
        return []
    limit = settings.backup_max_age_hours * 3600
    now = time.time()
    return [
        rig
        for rig, age in ages(town, rigs).items()
        if (age if age is not None else _existed_for(town, rig, now)) > limit
    ]


def _existed_for(town: Town, rig: str, now: float) -> float:
    """Seconds since the rig's folder was made: its mtime, as Dolt adds nothing beside `.dolt` in it
    (one lstat; a folder that cannot be read counts as old)."""
    try:
        return now - os.lstat(town.data_dir / rig).st_mtime
    except (OSError, ValueError):
        return math.inf
