"""Onboarding a developer in a town, step by step; each step idempotent and plain about what it does.

    dolt installed -> beads data migrated -> rigs exist -> server verified

The Invoke chain (gastown_tasks.tasks.onboard) is one task per step over these functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ConfigError, MigrationError, StartFailed
from ..files.datadir import is_valid_rig_name, rigs_on_disk
from ..server.discovery import find_running
from ..server.server import start, stop
from ..settings import DoltSettings
from ..sql import sqlclient
from ..town import Town
from .migrate import migrate_town, plan_migration, unmigrated
from .rigadmin import init_rig

Echo = Callable[[str], None]
DEFAULT_RIGS = "hq"


def configured_rigs(value: Any) -> list[str]:
    """onboard.rigs: a comma-separated text ("hq,gastown", what INVOKE_ONBOARD_RIGS gives) or a list."""
    if value is None or value == "":
        value = DEFAULT_RIGS
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, list | tuple) else None
    if items is None:
        raise ConfigError(f'invalid onboard.rigs {value!r}: give rig names, as text ("hq,gastown") or a list')
    names = [str(item).strip() for item in items if str(item).strip()]
    bad = [name for name in names if not is_valid_rig_name(name)]
    if bad or not names:
        raise ConfigError(
            f"invalid onboard.rigs {value!r}: {', '.join(bad) or 'no names'}; use letters, digits, "
            "'_' or '-' (set onboard.rigs in invoke.yaml or INVOKE_ONBOARD_RIGS)"
        )
    return names


def migrate_legacy(town: Town, settings: DoltSettings, echo: Echo) -> str:
    """Move every rig's beads data into .dolt-data (bd 1.0's embedded databases included).

    Onboarding goes no further while any beads data stays outside the server: pointing bd at the
    server then would hide those issues.
    """
    plan = plan_migration(town)
    stopped = None
    if plan.moves:
        running = find_running(town, settings)[0]
        if running is not None:
            echo(
                f"stopping the server (pid {running.pid}) first: databases must not be served while they move; "
                "the server-verified step starts it again"
            )
            stop(town, settings, echo=echo)
            stopped = running.pid
    report = migrate_town(town, settings, echo=echo)
    left = unmigrated(town)
    if left:
        again = f"; the server was stopped for the migration (pid {stopped}): gt-dolt start" if stopped else ""
        raise MigrationError(
            f"beads data is still outside the server, so bd would not find it there: {'; '.join(left)}; "
            f"resolve each (see the skip lines above), then onboard again{again}"
        )
    if report.moved:
        return f"ok: migrated {', '.join(move.rig for move in report.moved)}"
    return "ok: no beads data outside the server"


def ensure_rigs(
    town: Town, settings: DoltSettings, wanted: list[str], echo: Echo, identity: tuple[str, str] | None = None
) -> str:
    have = {rig.name for rig in rigs_on_disk(town)}
    for name in wanted:
        if name not in have:
            created = init_rig(town, settings, name, identity=identity)
            for note in created.notes:
                echo(f"note: {note}")
            echo(f"created rig {name} at {created.path}")
    return f"ok: rigs {', '.join(wanted)} exist"


def all_in_place(town: Town) -> str:
    """The last word of onboarding, said only when no beads data is outside the server."""
    left = unmigrated(town)
    if left:
        raise MigrationError(f"beads data is outside the server: {'; '.join(left)}; run: gt-dolt migrate")
    return "onboard: everything is in place"


def verify_server(town: Town, settings: DoltSettings, echo: Echo) -> str:
    result = start(town, settings, echo=echo)
    for note in result.notes:
        echo(f"note: {note}")
    served = sqlclient.served_databases(settings.with_overrides(port=result.port)) or []
    lacking = sqlclient.missing([rig.name for rig in rigs_on_disk(town)], served)
    if lacking:
        raise StartFailed(
            f"the server runs (pid {result.pid}) but does not serve {', '.join(lacking)}; "
            "run: gt-dolt restart, then gt-dolt logs"
        )
    state = "started" if result.started else "already running"
    return f"ok: server {state} on {result.host}:{result.port}, serving {', '.join(served)}"
