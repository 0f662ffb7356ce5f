"""This repository's own tasks: composed the way a town's tasks.py would use gastown_tasks.

invoke demo        a demo town in ./demo-town with a running server you can query
invoke dolt.<task> the dolt collection, pointed at the demo town
"""

from __future__ import annotations

from pathlib import Path

from invoke import Collection, Context, task

import gastown_tasks
from gastown_tasks import dolt
from gastown_tasks.ops import sqlclient
from gastown_tasks.ops.rigadmin import init_rig
from gastown_tasks.ops.rigs import rigs_on_disk
from gastown_tasks.tasks import onboard as onboarding
from gastown_tasks.tasks.config import reports_errors, settings_from_context, town_and_settings

HERE = Path(__file__).resolve().parent
DEMO_TOWN = HERE / "demo-town"
DEMO_RIG = "hq"
DEMO_AUTHOR = ("Gas Town demo", "demo@gastown.invalid")


@task(pre=[onboarding.dolt_installed])
@reports_errors
def demo_town(c: Context) -> None:
    """Create ./demo-town (git-ignored) with one rig database; no-op when it exists."""
    marker = DEMO_TOWN / "mayor" / "town.json"
    if not marker.is_file():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text('{"name": "demo-town"}\n')
    town, settings = town_and_settings(c)
    if not any(rig.name == DEMO_RIG for rig in rigs_on_disk(town)):
        path, _ = init_rig(town, settings, DEMO_RIG, identity=DEMO_AUTHOR)
        print(f"created rig {DEMO_RIG} at {path}")


@task(pre=[demo_town, onboarding.onboard])
@reports_errors
def demo(c: Context) -> None:
    """The main job: a demo town with a running server, queried over the MySQL protocol."""
    settings = settings_from_context(c)
    conn = sqlclient.connect(settings, database=DEMO_RIG)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS beads (id INT PRIMARY KEY, title VARCHAR(80))")
            cur.execute("REPLACE INTO beads VALUES (1, 'hello from the demo town')")
            cur.execute("SELECT title FROM beads WHERE id = 1")
            (title,) = cur.fetchone()
    finally:
        conn.close()
    print(f"query answered: {title!r}")
    print(
        f"connect with any MySQL client: mysql -h {settings.host} -P {settings.port} -u {settings.user} "
        f"--protocol=tcp {DEMO_RIG}"
    )
    print("stop it with: .venv/bin/invoke dolt.stop")


@task(pre=[dolt.start])
@reports_errors
def smoke(c: Context) -> None:
    """An example of chaining: needs the server, so dolt.start runs first."""
    served = sqlclient.served_databases(settings_from_context(c))
    print(f"server answers; databases: {', '.join(served or [])}")


ns = Collection(demo, demo_town, smoke)
for step in (
    onboarding.onboard,
    onboarding.dolt_installed,
    onboarding.legacy_migrated,
    onboarding.rigs_exist,
    onboarding.server_verified,
):
    ns.add_task(step)
gastown_tasks.install(ns)
ns.configure({"dolt": {"town_root": str(DEMO_TOWN)}, "onboard": {"rigs": [DEMO_RIG]}})
