"""Each command's reach, from the command table: with the town's server on another host, every
command of this machine's server is refused (exit 5) before it reads or writes anything here, and
the refusal names the commands that do work from here.  No traffic: 192.0.2.1 (TEST-NET-1) is only
compared with this machine's addresses, never connected to."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import GT_DOLT, TownFixture, make_town, tree
from faultkit import assert_clean
from gastown_tasks.commands import COMMANDS, WORK_REMOTELY
from gastown_tasks.commands.surface import ANYWHERE, LOCAL

REMOTE = {"GT_DOLT_HOST": "192.0.2.1", "GT_DOLT_PASSWORD": "x"}
LOCAL_ONLY = [command.name for command in COMMANDS if command.reach == LOCAL]
PROJECT_TASKS = "from invoke import Collection\nimport gastown_tasks\nns = Collection()\ngastown_tasks.add_dolt(ns)\n"


@pytest.fixture
def lived_in(tmp_path: Path) -> TownFixture:
    """A town with what a local command would act on: a rig folder, a log, a legacy beads folder."""
    t = make_town(tmp_path / "town")
    (t.root / ".dolt-data" / "hq").mkdir(parents=True)
    (t.root / "daemon").mkdir()
    (t.root / "daemon" / "dolt.log").write_text("an old line of the local server's log\n")
    (t.root / "gastown" / ".beads").mkdir(parents=True)
    return t


def test_every_command_declares_its_reach_and_the_table_has_both() -> None:
    assert {command.reach for command in COMMANDS} == {LOCAL, ANYWHERE}
    assert {"start", "stop", "restart", "backup", "restore", "logs", "fix-metadata", "watch"} <= set(LOCAL_ONLY)
    assert {"status", "list", "sql", "init-rig", "doctor", "stop-rogue"} <= set(WORK_REMOTELY)


@pytest.mark.parametrize("entry", ["gt-dolt", "invoke"])
@pytest.mark.parametrize("name", LOCAL_ONLY)
def test_a_local_only_command_refuses_a_remote_server_with_exit_5_and_changes_nothing(
    lived_in: TownFixture, name: str, entry: str
) -> None:
    t = lived_in
    if entry == "invoke":
        (t.root / "tasks.py").write_text(PROJECT_TASKS)
        argv = [sys.executable, "-m", "invoke", f"dolt.{name}"]
    else:
        argv = [*GT_DOLT, name]
    command = next(c for c in COMMANDS if c.name == name)
    argv += [f"arg{i}" for i, option in enumerate(command.options) if option.positional]  # e.g. remote-add's
    before = tree(t.root)  # after tasks.py: Invoke's loading it must not count
    done = subprocess.run(
        argv, cwd=t.root, env=t.env(**REMOTE), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    assert_clean(done, 5)
    assert done.stdout == ""
    works = ", ".join(WORK_REMOTELY[:-1]) + f" and {WORK_REMOTELY[-1]} work from here"
    assert done.stderr == (
        f"error: the server at 192.0.2.1:{t.port} is remote: {name} manages only a server on this machine; "
        f"manage it on its host ({works})\n"
    )
    assert tree(t.root) == before
