"""This repository's own tasks: composed the way a town's tasks.py would use gastown_tasks.

invoke demo        a demo town in ./demo-town with a running server you can query
invoke lint        ruff check, ruff format --check and mypy (what .ci/run checks)
invoke dolt.<task> the dolt collection, pointed at the demo town
"""

from __future__ import annotations

import sys
from pathlib import Path

from invoke import Collection, Context, task

import gastown_tasks
from gastown_tasks import dolt
from gastown_tasks.ops.rigs import onboarding
from gastown_tasks.ops.sql import sqlclient
from gastown_tasks.tasks import onboard
from gastown_tasks.tasks.config import reports_errors, settings_from_context, town_and_settings

HERE = Path(__file__).resolve().parent
DEMO_TOWN = HERE / "demo-town"
DEMO_RIG = "hq"
DEMO_AUTHOR = ("Gas Town demo", "demo@gastown.invalid")


@task(pre=[onboard.dolt_installed])
@reports_errors
def demo_town(c: Context) -> None:
    """Create ./demo-town (git-ignored) with one rig database; no-op when it exists."""
    marker = DEMO_TOWN / "mayor" / "town.json"
    if not marker.is_file():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text('{"name": "demo-town"}\n')
    town, settings = town_and_settings(c)
    # creates the rig with the demo's author (it says so); onboard's rigs-exist step then reports it
    onboarding.ensure_rigs(town, settings, [DEMO_RIG], print, identity=DEMO_AUTHOR)


@task(pre=[demo_town, onboard.onboard])
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
    print(f"query it yourself: .venv/bin/gt-dolt sql -q 'SELECT * FROM beads'   (from {HERE})")
    print(
        f"or any MySQL client: mysql -h {settings.host} -P {settings.port} -u {settings.user} --protocol=tcp {DEMO_RIG}"
    )
    print("stop it with: .venv/bin/gt-dolt stop")


@task(pre=[dolt.start])
@reports_errors
def smoke(c: Context) -> None:
    """An example of chaining: needs the server, so dolt.start runs first."""
    served = sqlclient.served_databases(settings_from_context(c))
    print(f"server answers; databases: {', '.join(served or [])}")


@task
def lint(c: Context) -> None:
    """Static checks, as .ci/run runs them: ruff check, ruff format --check, mypy, the import layers."""
    py = sys.executable
    for command in (
        f"{py} -m ruff check gastown_tasks tests bench tasks.py",
        f"{py} -m ruff format --check gastown_tasks tests bench tasks.py",
        f"{py} -m mypy",
        f"{Path(py).parent / 'lint-imports'} --no-logo --no-cache",  # [tool.importlinter] in pyproject.toml
    ):
        c.run(command, echo=True, pty=False)


ns = Collection(demo, demo_town, smoke, lint, *onboard.STEPS)
gastown_tasks.add_dolt(ns)
ns.configure({"dolt": {"town_root": str(DEMO_TOWN)}, "onboard": {"rigs": DEMO_RIG}})
