"""The onboarding chain, run by Invoke in a town as a new developer would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import TownFixture, old_database
from gastown_tasks.ops.files.runfiles import read_state
from test_migrate import rows

TOWN_TASKS = """
from invoke import Collection
import gastown_tasks
from gastown_tasks.tasks import onboard

ns = Collection(onboard.onboard)
gastown_tasks.install(ns)
ns.configure({"onboard": {"rigs": ["hq", "gastown"]}})
"""


def _onboard(t: TownFixture) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", "onboard"],
        cwd=t.root,
        env=t.env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_onboard_migrates_creates_rigs_starts_and_a_second_run_is_a_no_op(town: TownFixture, dolt_binary: Path) -> None:
    t = town
    (t.root / "tasks.py").write_text(TOWN_TASKS)
    old_database(dolt_binary, t.root / ".beads" / "dolt" / "beads", [(1, "from the old layout")])

    first = _onboard(t)
    assert first.returncode == 0, first.stderr
    assert "migrated hq" in first.stdout and "created rig gastown" in first.stdout
    assert "server started" in first.stdout and "everything is in place" in first.stdout
    assert rows(t, "hq") == [(1, "from the old layout")]
    assert {"hq", "gastown"} <= {name for (name,) in t.query("SHOW DATABASES")}
    pid = read_state(t.town).to_json()["pid"]

    second = _onboard(t)
    assert second.returncode == 0, second.stderr
    assert "created" not in second.stdout and "migrated" not in second.stdout
    assert "already running" in second.stdout and "everything is in place" in second.stdout
    assert read_state(t.town).to_json()["pid"] == pid
    assert [p.pid for p in t.servers()] == [pid]
