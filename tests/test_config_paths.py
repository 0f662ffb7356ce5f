"""Configuration through Invoke and gt-dolt, as users run them (real processes)."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

from conftest import TownFixture, free_port

TOWN_TASKS = """
from invoke import Collection, task
import gastown_tasks
from gastown_tasks import dolt

@task(pre=[dolt.start])
def needs_server(c):
    print("body ran")

ns = Collection(needs_server)
gastown_tasks.install(ns)
ns.configure({{"dolt": {{"port": {port}}}}})
"""


def _reported_port(t: TownFixture, *args: str, tool: str = "gt-dolt", **env: str) -> int:
    command = (
        [sys.executable, "-m", "gastown_tasks", "status", "--json", *args]
        if tool == "gt-dolt"
        else [sys.executable, "-m", "invoke", "dolt.status", "--json", *args]
    )
    base = t.env(**env)
    base.pop("GT_DOLT_PORT")
    base.update(env)
    done = subprocess.run(command, cwd=t.root, env=base, capture_output=True, text=True)
    assert done.returncode == 3, done.stderr
    return json.loads(done.stdout)["port"]


def test_port_precedence_is_gts_order_then_invoke_config_then_flags_for_both_entry_points(
    rigged_town: TownFixture,
) -> None:
    """GT_DOLT_PORT is gt's: it ranks where gt ranks it (below the town's files, which this fresh town
    lacks); dolt.port and --port are ours and rank above (docs/gastown.md, "Which port")."""
    t = rigged_town
    (t.root / "tasks.py").write_text(TOWN_TASKS.replace("ns.configure", "# ns.configure"))
    for tool in ("gt-dolt", "invoke"):
        assert _reported_port(t, tool=tool) == 3307
        assert _reported_port(t, tool=tool, GT_DOLT_PORT="4003") == 4003
        (t.root / "invoke.yaml").write_text("dolt:\n  port: 4001\n")
        assert _reported_port(t, tool=tool) == 4001
        assert _reported_port(t, tool=tool, INVOKE_DOLT_PORT="4002") == 4002
        assert _reported_port(t, tool=tool, INVOKE_DOLT_PORT="4002", GT_DOLT_PORT="4003") == 4002
        assert _reported_port(t, "--port", "4004", tool=tool, GT_DOLT_PORT="4003") == 4004
        (t.root / "invoke.yaml").unlink()


def test_invoke_yaml_beats_a_root_collection_default(rigged_town: TownFixture) -> None:
    t = rigged_town
    (t.root / "tasks.py").write_text(TOWN_TASKS.format(port=4000))
    assert _reported_port(t, tool="invoke") == 4000
    (t.root / "invoke.yaml").write_text("dolt:\n  port: 4001\n")
    assert _reported_port(t, tool="invoke") == 4001


def test_pre_task_start_sees_the_root_config_and_starts_the_server(rigged_town: TownFixture) -> None:
    t = rigged_town
    port = free_port()
    (t.root / "tasks.py").write_text(TOWN_TASKS.format(port=port))
    env = t.env()
    env.pop("GT_DOLT_PORT")
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "needs-server"],
        cwd=t.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "started: pid" in done.stdout and f":{port}" in done.stdout and "body ran" in done.stdout
    t.settings = t.settings.with_overrides(port=port)
    assert t.query("SELECT 1") == [(1,)]


def test_gt_dolt_runs_from_any_folder_inside_the_town(rigged_town: TownFixture) -> None:
    t = rigged_town
    deep = t.root / "gastown" / "polecats" / "nux"
    deep.mkdir(parents=True)
    started = t.gt_dolt("start", cwd=deep)
    assert started.returncode == 0, started.stderr
    status = t.gt_dolt("status", "--json", cwd=deep)
    assert status.returncode == 0 and json.loads(status.stdout)["data_dir"] == str(t.town.data_dir)
    assert t.gt_dolt("stop", cwd=deep).returncode == 0
    assert not t.servers()


def test_invalid_port_from_the_environment_is_refused_before_anything_starts(
    rigged_town: TownFixture,
) -> None:
    t = rigged_town
    for bad in ("abc", "0", "70000", "-5"):
        done = t.gt_dolt("start", GT_DOLT_PORT=bad)
        assert done.returncode == 2, done.stderr
        assert "invalid port" in done.stderr and "Traceback" not in done.stderr
    assert not t.servers()
    assert not t.town.pid_file.exists()


def test_negative_timeout_flag_is_refused(rigged_town: TownFixture) -> None:
    done = rigged_town.gt_dolt("start", "--timeout", "-3")
    assert done.returncode == 2 and "invalid start_timeout" in done.stderr
    assert not rigged_town.servers()


def test_gt_dolt_version_and_help_work_outside_a_town(tmp_path: Path) -> None:
    """The version is the package's own (its metadata, the newest CHANGELOG section), one line."""
    version = importlib.metadata.version("gastown-tasks")
    newest = re.search(r"^## (\S+)", (Path(__file__).parents[1] / "CHANGELOG.md").read_text(), re.M)
    assert newest is not None and newest.group(1) == version and re.fullmatch(r"\d+\.\d+\.\d+", version)
    console_script = Path(sys.executable).parent / "gt-dolt"
    for argv in ([sys.executable, "-m", "gastown_tasks", "--version"], [str(console_script), "--version"]):
        done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stdout, done.stderr) == (0, f"gt-dolt {version}\n", "")
    done = subprocess.run(
        [sys.executable, "-m", "gastown_tasks", "--list"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "\n  start " in done.stdout and "\n  status " in done.stdout, done.stdout
