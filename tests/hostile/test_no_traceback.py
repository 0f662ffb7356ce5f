"""No traceback, ever, and no hang: configuration errors, bad values, closed pipes, Ctrl-C, odd places."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import GT_DOLT, TownFixture, old_database
from faultkit import assert_clean
from gastown_tasks.ops.server import server

pytestmark = pytest.mark.hostile

INTERRUPT_AT = Path(__file__).parent / "interrupt_at.py"
TOWN_TASKS = """
from invoke import Collection
import gastown_tasks
from gastown_tasks.tasks import onboard
ns = Collection(*onboard.STEPS)
gastown_tasks.add_dolt(ns)
"""
INVOKE = [sys.executable, "-m", "invoke"]


def run(t: TownFixture, argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    environ = t.env(**env)
    if "INVOKE_DOLT_PORT" in env:
        environ.pop("GT_DOLT_PORT")  # it would win over INVOKE_DOLT_PORT
    return subprocess.run(
        argv, cwd=t.root, env=environ, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )


BAD_CONFIG = {
    "bad-yaml": ("dolt:\n  port: [3307\n", {}, "invalid YAML in"),
    "dolt-not-a-mapping": ("dolt: 5\n", {}, "the Invoke configuration cannot be read"),
    "port-from-invoke-env": ("", {"INVOKE_DOLT_PORT": "abc"}, "INVOKE_DOLT_PORT"),
    "server-not-a-mapping": ("dolt:\n  server: 7\n", {}, "the Invoke configuration cannot be read"),
    "unknown-server-key": ("dolt:\n  server:\n    listener:\n      bogus: 1\n", {}, "dolt.server.listener.bogus"),
    "top-level-list": ("- dolt\n- port: 3307\n", {}, "invoke.yaml cannot be read as Invoke configuration: its top"),
}


@pytest.mark.parametrize("case", BAD_CONFIG, ids=list(BAD_CONFIG))
@pytest.mark.parametrize("entry", ["gt-dolt", "invoke"])
def test_a_bad_configuration_is_one_line_and_exit_2_from_both_entry_points(
    rigged_town: TownFixture, case: str, entry: str
) -> None:
    t = rigged_town
    yaml, env, said = BAD_CONFIG[case]
    (t.root / "tasks.py").write_text(TOWN_TASKS)
    if yaml:
        (t.root / "invoke.yaml").write_text(yaml)
    command = "start" if case == "unknown-server-key" else "status"
    argv = [*GT_DOLT, command] if entry == "gt-dolt" else [*INVOKE, f"dolt.{command}"]
    done = run(t, argv, **env)
    assert_clean(done, 2)
    assert said in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert "tasks.py" not in done.stderr  # the town's tasks.py is fine: the message names what is not
    if command == "status":
        as_json = run(t, [*argv, "--json"], **env)
        assert_clean(as_json, 2)
        assert json.loads(as_json.stdout) == {"error": as_json.stderr.strip().removeprefix("error: "), "exit_code": 2}
    assert not t.servers()


def test_a_list_in_invoke_yaml_with_an_env_override_is_one_line_not_a_crash(rigged_town: TownFixture) -> None:
    """Invoke cannot put INVOKE_ONBOARD_RIGS over a YAML list (UncastableEnvVar): say so, exit 2."""
    t = rigged_town
    (t.root / "tasks.py").write_text(TOWN_TASKS)
    (t.root / "invoke.yaml").write_text("onboard:\n  rigs: [hq, gastown]\n")
    done = run(t, [*INVOKE, "rigs-exist"], INVOKE_ONBOARD_RIGS="beta")
    assert_clean(done, 2)
    assert "INVOKE_" in done.stderr and "onboard.rigs" in done.stderr


@pytest.mark.parametrize(("args", "said"), [(["logs", "-n", "abc"], "invalid -n"), (["start", "--port", "x"], "port")])
def test_bad_command_line_values_exit_2(rigged_town: TownFixture, args: list[str], said: str) -> None:
    done = rigged_town.gt_dolt(*args)
    assert_clean(done, 2)
    assert said in done.stderr


def test_a_closed_stdout_ends_quietly(rigged_town: TownFixture) -> None:
    """`gt-dolt status | head -1` where head has already gone: no BrokenPipeError trace."""
    t = rigged_town
    read, write = __import__("os").pipe()
    __import__("os").close(read)  # the reader is gone before anything is written
    done = subprocess.run(
        [*GT_DOLT, "status"], cwd=t.root, env=t.env(), stdout=write, stderr=subprocess.PIPE, text=True, timeout=60
    )
    __import__("os").close(write)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert done.returncode == 141


IMPORTS = [
    "gastown_tasks.cli.argv",
    "gastown_tasks.commands",
    "gastown_tasks.commands.runner",
    "gastown_tasks.ops.settings",
    "gastown_tasks.ops.files.runfiles",
    "psutil",
    "pymysql",
]


@pytest.mark.parametrize("module", IMPORTS)
def test_ctrl_c_during_any_import_prints_interrupted_and_exits_130(rigged_town: TownFixture, module: str) -> None:
    t = rigged_town
    server.start(t.town, t.settings)
    done = run(t, [sys.executable, str(INTERRUPT_AT), module, "status"])
    assert_clean(done, 130)
    assert done.stderr.strip() == "interrupted"


def test_ctrl_c_while_invoke_loads_a_project_prints_interrupted_and_exits_130(rigged_town: TownFixture) -> None:
    t = rigged_town
    (t.root / "tasks.py").write_text(TOWN_TASKS)
    done = run(t, [sys.executable, str(INTERRUPT_AT), "invoke.loader", "status"])
    assert_clean(done, 130)
    assert done.stderr.strip() == "interrupted"


def test_a_working_folder_longer_than_path_max_still_finds_the_town(rigged_town: TownFixture) -> None:
    t = rigged_town
    name = "d" * 200
    code = (
        f"import os\nos.chdir({str(t.root)!r})\n"
        f"for _ in range(25):\n    os.makedirs({name!r}, exist_ok=True)\n    os.chdir({name!r})\n"
        f"os.execv({sys.executable!r}, [{sys.executable!r}, '-m', 'gastown_tasks', 'status'])\n"
    )
    done = run(t, [sys.executable, "-c", code])
    assert_clean(done, 3)
    assert str(t.town.data_dir) in done.stdout


def test_gt_town_root_that_is_no_town_exits_4_and_creates_nothing(rigged_town: TownFixture, tmp_path: Path) -> None:
    elsewhere = tmp_path / "not-a-town"
    elsewhere.mkdir()
    for command in ("status", "start", "init-rig"):
        args = [command, "x"] if command == "init-rig" else [command]
        done = subprocess.run(
            [*GT_DOLT, *args],
            cwd=tmp_path,
            env=rigged_town.env(GT_TOWN_ROOT=str(elsewhere)),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert_clean(done, 4)
        assert "GT_TOWN_ROOT" in done.stderr and "mayor/town.json" in done.stderr
    assert list(elsewhere.iterdir()) == []


def test_migrate_with_nothing_to_do_exits_0_running_or_not(rigged_town: TownFixture) -> None:
    t = rigged_town
    assert_clean(t.gt_dolt("migrate"), 0)
    server.start(t.town, t.settings)
    for _ in range(2):
        done = t.gt_dolt("migrate")
        assert_clean(done, 0)
        assert "nothing to migrate" in done.stdout


def test_the_dry_run_and_the_real_run_make_the_same_plan(town: TownFixture, dolt_binary: Path) -> None:
    """A case clash (HQ/.beads next to the town's .beads), a symlinked source, a valid one."""
    t = town
    old_database(dolt_binary, t.root / ".beads" / "dolt" / "beads", [(1, "town")])
    old_database(dolt_binary, t.root / "HQ" / ".beads" / "dolt" / "beads", [(1, "clash")])
    old_database(dolt_binary, t.root / "gastown" / ".beads" / "dolt" / "beads", [(1, "fine")])
    outside = old_database(dolt_binary, t.root.parent / "outside" / "dolt" / "beads", [(1, "outside")])
    (t.root / "linked" / ".beads").mkdir(parents=True)
    (t.root / "linked" / ".beads" / "dolt").symlink_to(outside.parent)
    dry = t.gt_dolt("migrate", "--dry-run")
    real = t.gt_dolt("migrate")
    assert_clean(dry, 0)
    assert_clean(real, 0)
    planned = [line.removeprefix("would move ") for line in dry.stdout.splitlines() if line.startswith("would move")]
    moved = [line.removeprefix("move ") for line in real.stdout.splitlines() if line.startswith("move ")]
    skipped = [line for line in dry.stdout.splitlines() if line.startswith("skip")]
    assert planned == moved and len(moved) == 2
    assert skipped == [line for line in real.stdout.splitlines() if line.startswith("skip")]
    assert any("clashes with rig hq" in line for line in skipped)
    assert any("is a symlink" in line for line in skipped)
    assert sorted(p.name for p in t.town.data_dir.iterdir() if not p.name.startswith(".")) == ["gastown", "hq"]
    assert (outside / ".dolt").is_dir()
