"""What a newcomer meets: restart that never silently leaves a town without its server, one default
rig for sql, plain onboarding, visible Dolt, JSON errors, hints that run as written."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import GT_DOLT, TownFixture, cleanup_town, foreign_listener, free_port, make_town, old_database
from faultkit import assert_clean, end
from gastown_tasks.ops.build.binary import cache_root, cached_binary
from gastown_tasks.ops.server import server

TOWN_TASKS = """
from invoke import Collection
import gastown_tasks
from gastown_tasks.tasks import onboard
ns = Collection(*onboard.STEPS)
gastown_tasks.add_dolt(ns)
"""


def test_restart_with_the_port_held_by_another_process_stops_nothing(rigged_town: TownFixture) -> None:
    """The running server is on another port; the one asked for is taken: restart refuses first."""
    t = rigged_town
    other = free_port()
    started = server.start(t.town, t.settings.with_overrides(port=other))
    holder = foreign_listener(t.port)
    try:
        status = t.gt_dolt("status", "--port", str(t.port))
        assert_clean(status, 0)
        assert f"which pid {holder.pid}" in status.stdout and "before gt-dolt restart" in status.stdout
        assert "restart moves it" not in status.stdout  # the hint must be true
        done = t.gt_dolt("restart", "--port", str(t.port))
        assert_clean(done, 1)
        assert f"port {t.port} is in use by pid {holder.pid}" in done.stderr
        assert [p.pid for p in t.servers()] == [started.pid]  # nothing was stopped
    finally:
        end(holder)


def test_restart_that_fails_after_the_stop_says_the_server_is_down_and_how_to_bring_it_back(
    rigged_town: TownFixture,
) -> None:
    """A config value only Dolt itself refuses: nothing before the stop can know."""
    t = rigged_town
    (t.root / "tasks.py").write_text(TOWN_TASKS)
    started = server.start(t.town, t.settings)
    (t.root / "invoke.yaml").write_text("dolt:\n  server:\n    system_variables:\n      dolt_log_level: warn\n")
    done = t.gt_dolt("restart")
    assert_clean(done, 1)
    assert f"the server is down: it was stopped for the restart (pid {started.pid})" in done.stderr
    assert "bring it back with: gt-dolt start" in done.stderr
    assert not t.servers()
    (t.root / "invoke.yaml").unlink()
    assert_clean(t.gt_dolt("start"), 0)


def test_sql_query_runs_in_the_same_default_rig_whether_the_server_runs_or_not(rigged_town: TownFixture) -> None:
    t = rigged_town
    t.rig("alpha")  # sorts before hq: the default is still hq
    embedded = t.gt_dolt("sql", "-q", "SELECT DATABASE() AS db")
    server.start(t.town, t.settings)
    served = t.gt_dolt("sql", "-q", "SELECT DATABASE() AS db")
    for done in (embedded, served):
        assert_clean(done, 0)
        assert "| hq " in done.stdout
        assert done.stderr.startswith("sql: rig hq (the default; --rig NAME to choose)")
    chosen = t.gt_dolt("sql", "--rig", "alpha", "-q", "SELECT DATABASE() AS db")
    assert_clean(chosen, 0)
    assert "| alpha " in chosen.stdout


def _invoke(t: TownFixture, task: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`invoke TASK` in the town, with the town's tasks.py."""
    return subprocess.run(
        [sys.executable, "-m", "invoke", task],
        cwd=t.root,
        env=t.env(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_onboarding_says_why_it_stops_a_running_server_and_stops_at_data_it_cannot_move(
    rigged_town: TownFixture, dolt_binary: Path
) -> None:
    t = rigged_town
    (t.root / "tasks.py").write_text(TOWN_TASKS)
    started = server.start(t.town, t.settings)
    old_database(dolt_binary, t.root / "gastown" / ".beads" / "dolt" / "beads", [(1, "old")])
    old_database(dolt_binary, t.root / ".beads" / "dolt" / "beads", [(1, "hq exists already")])
    done = _invoke(t, "onboard")
    assert_clean(done, 1)
    assert f"stopping the server (pid {started.pid}) first: databases must not be served while they move" in done.stdout
    assert "skip" in done.stdout and "already exists" in done.stdout
    assert "beads data is still outside the server" in done.stderr and "everything is in place" not in done.stdout
    # moved; only hq's second copy is left to resolve (the temp path may hold "gastown": the user's name)
    assert str(t.root / "gastown" / ".beads") not in done.stderr and str(t.root / ".beads") in done.stderr
    assert (t.root / ".beads" / "dolt" / "beads" / ".dolt").is_dir() and t.town.rig_dir("gastown").is_dir()
    again = _invoke(t, "onboard")
    assert_clean(again, 1)
    assert "skip" in again.stdout and "already exists" in again.stdout and "everything is in place" not in again.stdout


@pytest.mark.parametrize(
    ("yaml", "env", "rigs"),
    [
        ('onboard:\n  rigs: "hq,gastown"\n', {}, ["gastown", "hq"]),
        ("onboard:\n  rigs: [hq, beta]\n", {}, ["beta", "hq"]),
        ('onboard:\n  rigs: "hq"\n', {"INVOKE_ONBOARD_RIGS": "hq,gamma"}, ["gamma", "hq"]),
        ("", {"INVOKE_ONBOARD_RIGS": "delta"}, ["delta"]),
    ],
    ids=["yaml-text", "yaml-list", "env-over-yaml", "env-only"],
)
def test_onboard_rigs_come_from_invoke_yaml_or_the_environment(
    town: TownFixture, yaml: str, env: dict[str, str], rigs: list[str]
) -> None:
    t = town
    (t.root / "tasks.py").write_text(TOWN_TASKS)
    if yaml:
        (t.root / "invoke.yaml").write_text(yaml)
    done = _invoke(t, "rigs-exist", **env)
    assert_clean(done, 0)
    assert sorted(p.name for p in t.town.data_dir.iterdir() if not p.name.startswith(".")) == rigs


def test_a_dolt_other_than_the_pinned_one_is_named_by_install_and_start(
    rigged_town: TownFixture, tmp_path: Path
) -> None:
    t = rigged_town
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    other = bin_dir / "dolt"
    other.write_text(f'#!/bin/sh\nexec "{cached_binary()}" "$@"\n')
    other.chmod(other.stat().st_mode | stat.S_IXUSR)
    path = f"{bin_dir}:{os.environ['PATH']}"
    install = t.gt_dolt("install", PATH=path)
    assert_clean(install, 0)
    assert f"note: start will run {other}" in install.stdout
    start = t.gt_dolt("start", PATH=path)
    assert_clean(start, 0)
    assert f"note: using {other} (dolt version 2.2.0), not the pinned Dolt 2.2.0" in start.stdout


def test_status_json_outside_a_town_is_json(tmp_path: Path) -> None:
    done = subprocess.run([*GT_DOLT, "status", "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 4
    data = json.loads(done.stdout)
    assert data["exit_code"] == 4 and "not in a Gas Town workspace" in data["error"]
    assert done.stderr.startswith("error: not in a Gas Town workspace")


def test_the_identity_hint_names_a_dolt_that_runs(town: TownFixture, tmp_path: Path) -> None:
    """No Dolt or git identity, no dolt on PATH: the hint gives the cached binary's full path."""
    t = town
    home = tmp_path / "empty-home"
    (home / ".dolt").mkdir(parents=True)
    (home / ".dolt" / "config_global.json").write_text("{}")
    path = ":".join(p for p in os.environ["PATH"].split(":") if not (Path(p) / "dolt").exists())
    done = t.gt_dolt(
        "init-rig",
        "hq",
        GASTOWN_TASKS_CACHE=str(cache_root()),
        DOLT_ROOT_PATH=str(home),
        HOME=str(home),
        PATH=path,
        GIT_CONFIG_GLOBAL=str(home / "nogit"),
        GIT_CONFIG_NOSYSTEM="1",
    )
    assert_clean(done, 1)
    assert f'{cached_binary()} config --global --add user.name "Your Name"' in done.stderr


def test_gt_dolt_in_a_project_sees_the_configuration_its_tasks_py_sets_in_code(
    tmp_path: Path, dolt_binary: Path
) -> None:
    """Like this repository: a project folder whose tasks.py points dolt.town_root at a town elsewhere."""
    t = make_town(tmp_path / "town")
    try:
        t.rig("hq")
        project = tmp_path / "project"
        project.mkdir()
        (project / "tasks.py").write_text(
            TOWN_TASKS + f'ns.configure({{"dolt": {{"town_root": "{t.root}", "port": {t.port}}}}})\n'
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("GT_DOLT_")}
        for argv in ([*GT_DOLT, "status", "--json"], [sys.executable, "-m", "invoke", "dolt.status", "--json"]):
            done = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=60)
            assert done.returncode == 3, done.stderr
            data = json.loads(done.stdout)
            assert data["data_dir"] == str(t.town.data_dir) and data["port"] == t.port
    finally:
        cleanup_town(t)
